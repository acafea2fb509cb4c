%%% @doc PropEr: for random histories and queries, the knowledge base answers exactly what the
%%% brute-force pure Erlang model (`kb_model', Jaccard over `sets') answers, in the same order:
%%% `similar/2', `recommend/2', `effectiveness/1', `success_rate/1' and `size/0' through the
%%% public API (records go through `record/1', the owner and the bound of 50 records), and
%%% `kb_similar'/`kb_recommend' of the NIF on private bases with random history limits.
-module(autonomic_kb_prop_tests).

-include_lib("proper/include/proper.hrl").
-include_lib("eunit/include/eunit.hrl").

-define(MAX, 50).
-define(POOL, 60).
%% Records of a case are stamped within this many milliseconds.
-define(SPAN, 35).

api_test_() ->
    {setup,
        fun() ->
            Dir = autonomic_kb_tests:temp_dir("prop"),
            autonomic_kb_tests:start_app(Dir, [{kb_max_records, ?MAX}]),
            Dir
        end,
        fun autonomic_kb_tests:stop_app/1,
        {timeout, 600,
            ?_assert(proper:quickcheck(prop_api_matches_model(), [{numtests, 300}, {to_file, user}]))}}.

nif_test_() ->
    {setup,
        fun() -> autonomic_kb_tests:start_app(autonomic_kb_tests:temp_dir("propnif"), []) end,
        fun autonomic_kb_tests:stop_app/1,
        {timeout, 600,
            ?_assert(proper:quickcheck(prop_nif_matches_model(), [{numtests, 500}, {to_file, user}]))}}.

%%% Properties

prop_api_matches_model() ->
    ?FORALL({Pool, Picks, Queries, T, L}, {pool(), picks(), queries(), threshold(), limit()},
        begin
            ok = autonomic_kb:clear(),
            %% Stamp the records after the clear (records before it are refused) but not in the
            %% future (the next case's clear must remove them).
            Base = autonomic_kb_tests:base(?SPAN) - ?SPAN,
            History = [stamp(lists:nth(I, Pool), Base) || I <- Picks],
            lists:foreach(fun(F) -> expect_recorded(autonomic_kb:record(F)) end, History),
            Records = kb_model:records(lists:foldl(fun kb_model:add/2, kb_model:new(?MAX), History)),
            Checks =
                [{size, autonomic_kb:size(), length(Records)}]
                ++ [{{similar, Q}, autonomic_kb:similar(Q, #{threshold => T, limit => L}),
                     kb_model:similar(Records, Q, T, L)} || Q <- Queries]
                ++ [{{recommend, Q}, autonomic_kb:recommend(Q, #{threshold => T}),
                     kb_model:recommend(Records, Q, T)} || Q <- Queries]
                ++ [{{effectiveness, S}, maps:get(S, autonomic_kb:effectiveness(all)),
                     kb_model:effectiveness(Records, S)} || S <- autonomic_kb:strategies()]
                ++ [{{success_rate, Ty}, autonomic_kb:success_rate(Ty), kb_model:success_rate(Records, Ty)}
                    || Ty <- failure_types()],
            agree(Checks)
        end).

prop_nif_matches_model() ->
    ?FORALL({Max, Pool, Picks, Queries, T, L}, {range(1, 80), pool(), picks(), queries(), threshold(), limit()},
        begin
            {ok, H} = autonomic_nif:kb_new(#{max_records => Max}),
            Now = erlang:system_time(millisecond),
            History = [stamp(lists:nth(I, Pool), Now) || I <- Picks],
            [_ = autonomic_nif:kb_insert_dirty(H, F, Now) || F <- History],
            Records = kb_model:records(lists:foldl(fun kb_model:add/2, kb_model:new(Max), History)),
            Checks =
                [{size, autonomic_nif:kb_size(H), length(Records)}]
                ++ [{{similar, Q}, autonomic_nif:kb_similar_dirty(H, Q, T, L),
                     kb_model:similar(Records, Q, T, L)} || Q <- Queries]
                ++ [{{similar_normal, Q}, autonomic_nif:kb_similar(H, Q, T, L),
                     kb_model:similar(Records, Q, T, L)} || Q <- Queries]
                ++ [{{recommend, Q}, autonomic_nif:kb_recommend_dirty(H, Q, T),
                     kb_model:recommend(Records, Q, T)} || Q <- Queries],
            agree(Checks)
        end).

agree(Checks) ->
    case [{What, {got, Got}, {model, Want}} || {What, Got, Want} <- Checks, Got =/= Want] of
        [] -> true;
        [First | _] -> io:format(user, "~nmismatch: ~p~n", [First]), false
    end.

expect_recorded({ok, _}) -> ok;
%% Older than every record of a full base, as the model also decides.
expect_recorded({error, {too_old, _}}) -> ok.

stamp(#{timestamp := Offset} = F, Base) ->
    F#{timestamp := Base + Offset}.

%%% Generators

%% A skewed vocabulary: a few common symptoms, a long tail, and some non-ASCII ones.
symptom() ->
    frequency([
        {6, elements([<<"cpu_high">>, <<"mem_high">>, <<"rpc_timeout">>, <<"heartbeat_lost">>])},
        {3, ?LET(I, range(0, 11), <<"s", (integer_to_binary(I))/binary>>)},
        {2, ?LET(I, range(0, 29), <<"tail", (integer_to_binary(I))/binary>>)},
        {1, elements([<<"mémoire"/utf8>>, <<"ノード"/utf8>>])}
    ]).

symptoms() ->
    ?LET(N, range(0, 7), vector(N, symptom())).

failure_types() ->
    [node_down, overload, <<"overload">>].

%% ?POOL records, one content per id, timestamps (0..?SPAN) colliding often (to exercise
%% tie-breaks).
pool() ->
    ?LET(Fields, vector(?POOL, {range(0, 20), symptoms(), elements(failure_types()),
                                elements(autonomic_kb:strategies()), boolean(), recovery()}),
        [#{id => <<"id", (integer_to_binary(I))/binary>>,
           failure_type => Ty,
           root_cause => <<"cause">>,
           symptoms => S,
           strategy => St,
           recovery_ms => Ms,
           success => Ok,
           timestamp => Ts + (I rem 4) * 5}
         || {I, {Ts, S, Ty, St, Ok, Ms}} <- lists:zip(lists:seq(1, ?POOL), Fields)]).

recovery() ->
    oneof([range(0, 5000), ?LET(F, float(0.0, 5000.0), F), elements([0, 100, 100.0, 250])]).

picks() ->
    list(range(1, ?POOL)).

queries() ->
    ?LET(N, range(1, 5), vector(N, symptoms())).

threshold() ->
    oneof([0.0, 0, 0.7, 1, 1.0, 0.5, float(0.0, 1.0)]).

limit() ->
    range(1, 20).
