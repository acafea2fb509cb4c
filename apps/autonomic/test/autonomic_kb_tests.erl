%%% @doc EUnit tests of `autonomic_kb' on a running application with its own data directory:
%%% recording, searching, statistics, recommendation, export and import, clear, restart, the
%%% retention tick, metrics, and every kind of bad input (which must return `{error, Reason}' and
%%% change nothing). Also the helpers the other knowledge base tests use to start the app.
-module(autonomic_kb_tests).

-include_lib("eunit/include/eunit.hrl").

-export([temp_dir/1, start_app/2, stop_app/1, failure/1, failure/2, base/1]).

-define(ENV_KEYS, [data_dir, kb_max_records, kb_retention_ms, kb_flush_ms, kb_sync_interval_ms]).

%%% Helpers

temp_dir(Tag) ->
    Dir = filename:join(["/tmp", "autonomic-kb-test-" ++ Tag ++ "-" ++ os:getpid() ++ "-"
                         ++ integer_to_list(erlang:unique_integer([positive]))]),
    ok = filelib:ensure_path(Dir),
    Dir.

start_app(Dir, Env) ->
    _ = application:stop(autonomic),
    _ = application:load(autonomic),
    [ok = application:unset_env(autonomic, K) || K <- ?ENV_KEYS],
    ok = application:set_env(autonomic, data_dir, Dir),
    [ok = application:set_env(autonomic, K, V) || {K, V} <- Env],
    {ok, _} = application:ensure_all_started(autonomic),
    Dir.

stop_app(Dir) ->
    _ = application:stop(autonomic),
    [ok = application:unset_env(autonomic, K) || K <- ?ENV_KEYS],
    _ = file:del_dir_r(Dir),
    ok.

failure(Symptoms) ->
    failure(Symptoms, #{}).

failure(Symptoms, Overrides) ->
    maps:merge(#{failure_type => node_down,
                 root_cause => <<"netsplit">>,
                 symptoms => Symptoms,
                 strategy => supervisor_restart,
                 recovery_ms => 100,
                 success => true}, Overrides).

now_ms() -> erlang:system_time(millisecond).

%% A time base for tests that stamp records in the past of "now": sleeps until the clock is
%% `Span' ms past the last clear, so that records stamped in [Base - Span, Base] are accepted
%% (not before the clear) and are not in the future (so the next clear removes them).
base(Span) ->
    #{epoch := Epoch} = autonomic_kb:info(),
    wait_for_time(Epoch + Span),
    now_ms().

wait_for_time(T) ->
    case now_ms() of
        Now when Now >= T -> ok;
        Now -> timer:sleep(T - Now), wait_for_time(T)
    end.

%%% Fixture: one application for the whole module; each test starts from an empty base.

kb_test_() ->
    {setup,
        fun() -> start_app(temp_dir("eunit"), []) end,
        fun stop_app/1,
        fun(Dir) ->
            [{atom_to_list(element(2, erlang:fun_info(T, name))),
              fun() -> ok = autonomic_kb:clear(), T(Dir) end}
             || T <- [fun record_fills_id_and_timestamp/1, fun records_are_immutable/1,
                      fun symptoms_are_a_set/1, fun bad_records_change_nothing/1,
                      fun bad_queries_change_nothing/1, fun similar_defaults_threshold_limit_and_order/1,
                      fun huge_limits_are_fine/1, fun statistics/1, fun recommend_prefers_evidence/1,
                      fun export_import_round_trip_is_exact/1, fun corrupt_imports_change_nothing/1,
                      fun export_errors/1, fun clear_empties_and_refuses_the_past/1,
                      fun clean_restart_keeps_everything/1, fun metrics_are_rendered/1]]
        end}.

record_fills_id_and_timestamp(_Dir) ->
    T0 = now_ms(),
    {ok, Id} = autonomic_kb:record(failure([<<"a">>])),
    ?assertMatch(<<_:32/binary>>, Id),
    {ok, F} = autonomic_kb:get(Id),
    ?assert(maps:get(timestamp, F) >= T0 andalso maps:get(timestamp, F) =< now_ms()),
    ?assertEqual(maps:merge(failure([<<"a">>]), #{id => Id, timestamp => maps:get(timestamp, F)}), F),
    %% Ids are unique and sort roughly by time.
    {ok, Id2} = autonomic_kb:record(failure([<<"a">>])),
    ?assertNotEqual(Id, Id2),
    ?assertEqual(2, autonomic_kb:size()).

records_are_immutable(_Dir) ->
    F = failure([<<"a">>], #{id => <<"fixed">>, timestamp => now_ms()}),
    ?assertEqual({ok, <<"fixed">>}, autonomic_kb:record(F)),
    %% Same id, same content: a no-op. Different content: refused.
    ?assertEqual({ok, <<"fixed">>}, autonomic_kb:record(F)),
    ?assertEqual({error, {duplicate_id, <<"fixed">>}}, autonomic_kb:record(F#{success => false})),
    ?assertEqual(1, autonomic_kb:size()),
    ?assertEqual({ok, F}, autonomic_kb:get(<<"fixed">>)),
    ?assertEqual({error, not_found}, autonomic_kb:get(<<"other">>)).

symptoms_are_a_set(_Dir) ->
    {ok, Id} = autonomic_kb:record(failure([<<"b">>, <<"a">>, <<"b">>, <<"ü"/utf8>>])),
    {ok, #{symptoms := S}} = autonomic_kb:get(Id),
    ?assertEqual([<<"a">>, <<"b">>, <<"ü"/utf8>>], S),
    ?assertMatch([{1.0, _}], autonomic_kb:similar([<<"ü"/utf8>>, <<"a">>, <<"b">>, <<"a">>])).

bad_records_change_nothing(_Dir) ->
    {ok, _} = autonomic_kb:record(failure([<<"a">>])),
    Good = failure([<<"a">>]),
    TooMany = [integer_to_binary(I) || I <- lists:seq(1, 257)],
    Bad = [
        {not_a_map, {invalid_failure, not_a_map}},
        {[{a, 1}], {invalid_failure, not_a_map}},
        {maps:remove(success, Good), {invalid_failure, {missing, success}}},
        {maps:remove(symptoms, Good), {invalid_failure, {missing, symptoms}}},
        {maps:remove(failure_type, Good), {invalid_failure, {missing, failure_type}}},
        {maps:remove(root_cause, Good), {invalid_failure, {missing, root_cause}}},
        {maps:remove(strategy, Good), {invalid_failure, {missing, strategy}}},
        {maps:remove(recovery_ms, Good), {invalid_failure, {missing, recovery_ms}}},
        {Good#{node => x}, {invalid_failure, {unknown_key, node}}},
        {Good#{"symptoms" => []}, {invalid_failure, {unknown_key, "symptoms"}}},
        {Good#{symptoms => not_a_list}, {invalid_failure, {invalid, symptoms, not_a_list}}},
        {Good#{symptoms => [a]}, {invalid_failure, {invalid, symptoms, [a]}}},
        {Good#{symptoms => ["a"]}, {invalid_failure, {invalid, symptoms, ["a"]}}},
        {Good#{symptoms => [<<>>]}, {invalid_failure, {invalid, symptoms, [<<>>]}}},
        {Good#{symptoms => [<<255>>]}, {invalid_failure, {invalid, symptoms, [<<255>>]}}},
        {Good#{symptoms => [<<"a">> | <<"b">>]}, {invalid_failure, {invalid, symptoms, [<<"a">> | <<"b">>]}}},
        {Good#{symptoms => TooMany}, {invalid_failure, {invalid, symptoms, TooMany}}},
        {Good#{symptoms => [binary:copy(<<"x">>, 1025)]}, invalid_symptoms_size},
        {Good#{strategy => reboot}, {invalid_failure, {invalid, strategy, reboot}}},
        {Good#{strategy => "throttle"}, {invalid_failure, {invalid, strategy, "throttle"}}},
        {Good#{recovery_ms => -1}, {invalid_failure, {invalid, recovery_ms, -1}}},
        {Good#{recovery_ms => -1.5}, {invalid_failure, {invalid, recovery_ms, -1.5}}},
        {Good#{recovery_ms => 1 bsl 64}, {invalid_failure, {invalid, recovery_ms, 1 bsl 64}}},
        {Good#{recovery_ms => fast}, {invalid_failure, {invalid, recovery_ms, fast}}},
        {Good#{success => yes}, {invalid_failure, {invalid, success, yes}}},
        {Good#{timestamp => -1}, {invalid_failure, {invalid, timestamp, -1}}},
        {Good#{timestamp => 1.5}, {invalid_failure, {invalid, timestamp, 1.5}}},
        {Good#{id => <<>>}, {invalid_failure, {invalid, id, <<>>}}},
        {Good#{id => "abc"}, {invalid_failure, {invalid, id, "abc"}}},
        {Good#{id => binary:copy(<<"i">>, 129)}, {invalid_failure, {invalid, id, binary:copy(<<"i">>, 129)}}},
        {Good#{failure_type => 42}, {invalid_failure, {invalid, failure_type, 42}}},
        {Good#{failure_type => list_to_atom([16#1F600])},
            {invalid_failure, {invalid, failure_type, list_to_atom([16#1F600])}}},
        {Good#{root_cause => <<255, 0>>}, {invalid_failure, {invalid, root_cause, <<255, 0>>}}},
        %% Valid, but older than the retention (90 days): it would not be kept.
        {Good#{timestamp => 0}, {too_old, 0}},
        %% More than a minute ahead of this node's clock.
        {Good#{timestamp => 4102444800000}, {too_new, 4102444800000}}
    ],
    lists:foreach(
        fun({Input, invalid_symptoms_size}) ->
                ?assertMatch({error, {invalid_failure, {invalid, symptoms, _}}}, autonomic_kb:record(Input));
           ({Input, Reason}) ->
                ?assertEqual({Input, {error, Reason}}, {Input, autonomic_kb:record(Input)})
        end, Bad),
    ?assertEqual(1, autonomic_kb:size()),
    #{records := 1} = autonomic_kb:info().

bad_queries_change_nothing(_Dir) ->
    {ok, _} = autonomic_kb:record(failure([<<"a">>])),
    Before = autonomic_kb:similar([<<"a">>]),
    Bad = [
        {fun() -> autonomic_kb:similar(not_a_list) end, {invalid_symptoms, not_a_list}},
        {fun() -> autonomic_kb:similar([a]) end, {invalid_symptoms, [a]}},
        {fun() -> autonomic_kb:similar([<<>>]) end, {invalid_symptoms, [<<>>]}},
        {fun() -> autonomic_kb:similar([<<"a">> | b]) end, {invalid_symptoms, [<<"a">> | b]}},
        {fun() -> autonomic_kb:similar([<<"a">>], #{threshold => -0.1}) end, {invalid_threshold, -0.1}},
        {fun() -> autonomic_kb:similar([<<"a">>], #{threshold => 1.0000001}) end, {invalid_threshold, 1.0000001}},
        {fun() -> autonomic_kb:similar([<<"a">>], #{threshold => 2}) end, {invalid_threshold, 2}},
        {fun() -> autonomic_kb:similar([<<"a">>], #{threshold => high}) end, {invalid_threshold, high}},
        {fun() -> autonomic_kb:similar([<<"a">>], #{limit => 0}) end, {invalid_limit, 0}},
        {fun() -> autonomic_kb:similar([<<"a">>], #{limit => -3}) end, {invalid_limit, -3}},
        {fun() -> autonomic_kb:similar([<<"a">>], #{limit => 2.0}) end, {invalid_limit, 2.0}},
        {fun() -> autonomic_kb:similar([<<"a">>], #{limit => all}) end, {invalid_limit, all}},
        {fun() -> autonomic_kb:similar([<<"a">>], #{top => 3}) end, {unknown_option, top}},
        {fun() -> autonomic_kb:similar([<<"a">>], [{limit, 3}]) end, {invalid_options, [{limit, 3}]}},
        {fun() -> autonomic_kb:recommend(nope) end, {invalid_symptoms, nope}},
        {fun() -> autonomic_kb:recommend([<<"a">>], #{limit => 3}) end, {unknown_option, limit}},
        {fun() -> autonomic_kb:recommend([<<"a">>], #{threshold => -1}) end, {invalid_threshold, -1}},
        {fun() -> autonomic_kb:effectiveness(reboot) end, {unknown_strategy, reboot}},
        {fun() -> autonomic_kb:effectiveness(<<"throttle">>) end, {unknown_strategy, <<"throttle">>}},
        {fun() -> autonomic_kb:effectiveness(42) end, {unknown_strategy, 42}},
        {fun() -> autonomic_kb:success_rate(42) end, {invalid_failure_type, 42}},
        {fun() -> autonomic_kb:success_rate([<<"x">>]) end, {invalid_failure_type, [<<"x">>]}},
        {fun() -> autonomic_kb:get(42) end, {invalid, id, 42}},
        {fun() -> autonomic_kb:export([]) end, any},
        {fun() -> autonomic_kb:import(<<>>) end, any}
    ],
    lists:foreach(
        fun({F, any}) -> ?assertMatch({error, _}, F());
           ({F, Reason}) -> ?assertEqual({error, Reason}, F())
        end, Bad),
    ?assertEqual(Before, autonomic_kb:similar([<<"a">>])),
    ?assertEqual(1, autonomic_kb:size()).

similar_defaults_threshold_limit_and_order(_Dir) ->
    Now = base(10),
    Rec = fun(Id, S, Ts) -> {ok, Id} = autonomic_kb:record(failure(S, #{id => Id, timestamp => Ts})) end,
    %% Query {a,b,c,d}: exact (1.0), 3 of 4 (0.75), 7/10 boundary case below, 2 of 4 (0.5).
    Rec(<<"exact">>, [<<"a">>, <<"b">>, <<"c">>, <<"d">>], Now),
    Rec(<<"three-old">>, [<<"a">>, <<"b">>, <<"c">>], Now - 10),
    Rec(<<"three-new-b">>, [<<"a">>, <<"b">>, <<"d">>], Now),
    Rec(<<"three-new-a">>, [<<"b">>, <<"c">>, <<"d">>], Now),
    Rec(<<"half">>, [<<"a">>, <<"b">>], Now),
    Q = [<<"a">>, <<"b">>, <<"c">>, <<"d">>],
    Ids = fun(R) -> [Id || {_, #{id := Id}} <- R] end,
    %% Default threshold 0.7: the 0.5 match is out; ties: newer first, then smaller id.
    R = autonomic_kb:similar(Q),
    ?assertEqual([<<"exact">>, <<"three-new-a">>, <<"three-new-b">>, <<"three-old">>], Ids(R)),
    ?assertEqual([1.0, 0.75, 0.75, 0.75], [S || {S, _} <- R]),
    ?assertEqual(R, autonomic_kb:similar(Q, #{threshold => 0.7, limit => 10})),
    ?assertEqual(lists:sublist(R, 2), autonomic_kb:similar(Q, #{limit => 2})),
    %% Threshold boundaries are inclusive.
    ?assertEqual(4, length(autonomic_kb:similar(Q, #{threshold => 0.75}))),
    ?assertEqual(1, length(autonomic_kb:similar(Q, #{threshold => 0.7500001}))),
    ?assertEqual(5, length(autonomic_kb:similar(Q, #{threshold => 0.5}))),
    ?assertEqual(1, length(autonomic_kb:similar(Q, #{threshold => 1}))),
    %% Threshold 0: everything, disjoint included.
    Rec(<<"disjoint">>, [<<"z">>], Now),
    ?assertMatch({0.0, #{id := <<"disjoint">>}}, lists:last(autonomic_kb:similar(Q, #{threshold => 0}))),
    %% Empty query: only records without symptoms are similar (1.0).
    Rec(<<"none">>, [], Now),
    ?assertMatch([{1.0, #{id := <<"none">>}}], autonomic_kb:similar([])),
    ?assertEqual([], autonomic_kb:similar([<<"unknown">>])).

huge_limits_are_fine(_Dir) ->
    {ok, _} = autonomic_kb:record(failure([<<"a">>])),
    ?assertMatch([_], autonomic_kb:similar([<<"a">>], #{limit => 1 bsl 70})).

statistics(_Dir) ->
    Rec = fun(Ty, St, Ok, Ms) ->
        {ok, _} = autonomic_kb:record(failure([<<"x">>], #{failure_type => Ty, strategy => St,
                                                          success => Ok, recovery_ms => Ms}))
    end,
    [Rec(node_down, throttle, true, Ms) || Ms <- lists:seq(10, 200, 10)],
    Rec(node_down, throttle, false, 9999),
    Rec(<<"node_down">>, pause, false, 5.5),
    ?assertEqual(#{successes => 20, failures => 1, rate => 20 / 21}, autonomic_kb:success_rate(node_down)),
    ?assertEqual(#{successes => 0, failures => 1, rate => 0.0}, autonomic_kb:success_rate(<<"node_down">>)),
    ?assertEqual(#{successes => 0, failures => 0, rate => undefined}, autonomic_kb:success_rate(other)),
    ?assertEqual(#{successes => 20, failures => 1, rate => 20 / 21,
                   mean_recovery_ms => 105.0, p95_recovery_ms => 190.0},
                 autonomic_kb:effectiveness(throttle)),
    ?assertEqual(#{successes => 0, failures => 1, rate => 0.0,
                   mean_recovery_ms => undefined, p95_recovery_ms => undefined},
                 autonomic_kb:effectiveness(pause)),
    All = autonomic_kb:effectiveness(all),
    ?assertEqual(lists:sort(autonomic_kb:strategies()), lists:sort(maps:keys(All))),
    ?assertEqual(autonomic_kb:effectiveness(throttle), maps:get(throttle, All)),
    ?assertEqual(#{successes => 0, failures => 0, rate => undefined,
                   mean_recovery_ms => undefined, p95_recovery_ms => undefined},
                 maps:get(escalate, All)).

recommend_prefers_evidence(_Dir) ->
    Q = [<<"a">>, <<"b">>, <<"c">>],
    Rec = fun(St, Ok) -> {ok, _} = autonomic_kb:record(failure(Q, #{strategy => St, success => Ok})) end,
    Rec(pause, true),
    [Rec(throttle, I =< 8) || I <- lists:seq(1, 10)],
    Rec(escalate, false),
    [#{strategy := throttle, score := S1, weight := W1, successes := 8, failures := 2},
     #{strategy := pause, score := S2, successes := 1, failures := 0},
     #{strategy := escalate, score := S3}] = autonomic_kb:recommend(Q),
    ?assertEqual({9 / 12, 10.0, 2 / 3, 1 / 3}, {S1, W1, S2, S3}),
    ?assertEqual([], autonomic_kb:recommend([<<"nothing">>, <<"alike">>])).

round_trip_failures() ->
    Now = base(5),
    [failure([<<"a">>, <<"ü"/utf8>>, <<"日本"/utf8>>], #{id => <<"f1">>, recovery_ms => 0.1, timestamp => Now}),
     failure([<<"b">>], #{id => <<"f2">>, recovery_ms => 1.0e300, failure_type => <<"disk full ☹"/utf8>>,
                          timestamp => Now - 1}),
     failure([], #{id => <<"f3">>, recovery_ms => 5.0e-324, root_cause => 'café', timestamp => Now - 2}),
     failure([<<"c">>], #{id => <<"f4">>, recovery_ms => 12.0, success => false, strategy => escalate,
                          timestamp => Now - 3}),
     failure([<<"c">>], #{id => <<"f5">>, recovery_ms => 18446744073709551615, timestamp => Now - 4}),
     failure([<<"\"quoted\\ \n newline">>], #{id => <<"id with spaces/ünï"/utf8>>, recovery_ms => 1.0e-7,
                                                timestamp => Now - 5})].

export_import_round_trip_is_exact(Dir) ->
    Fs = round_trip_failures(),
    [{ok, _} = autonomic_kb:record(F) || F <- Fs],
    A = filename:join(Dir, "a.json"),
    B = filename:join(Dir, "b.json"),
    ?assertEqual({ok, length(Fs)}, autonomic_kb:export(A)),
    ok = autonomic_kb:clear(),
    ?assertEqual(0, autonomic_kb:size()),
    %% The cleared records are older than the clear: importing them is refused, not an error.
    ?assertMatch({ok, #{offered := 6, added := 0, rejected := 6}}, autonomic_kb:import(A)),
    %% A fresh base takes them all.
    try
        stop_and_start(filename:join(Dir, "fresh")),
        ?assertEqual({ok, #{offered => 6, added => 6, duplicates => 0, rejected => 0}}, autonomic_kb:import(A)),
        ?assertMatch({ok, #{added := 0, duplicates := 6}}, autonomic_kb:import(list_to_binary(A))),
        ?assertEqual({ok, 6}, autonomic_kb:export(B)),
        {ok, BytesA} = file:read_file(A),
        {ok, BytesB} = file:read_file(B),
        ?assertEqual(BytesA, BytesB),
        %% Every term comes back identical: floats bit for bit, integers as integers, atoms as atoms.
        [?assertEqual({ok, kb_model:normalize(F)}, autonomic_kb:get(maps:get(id, F))) || F <- Fs],
        {ok, #{recovery_ms := Tiny}} = autonomic_kb:get(<<"f3">>),
        ?assertEqual(<<5.0e-324/float>>, <<Tiny/float>>)
    after
        stop_and_start(Dir)
    end.

stop_and_start(Dir) ->
    ok = application:stop(autonomic),
    ok = application:set_env(autonomic, data_dir, Dir),
    {ok, _} = application:ensure_all_started(autonomic).

corrupt_imports_change_nothing(Dir) ->
    {ok, _} = autonomic_kb:record(failure([<<"a">>])),
    Good = filename:join(Dir, "good.json"),
    {ok, 1} = autonomic_kb:export(Good),
    {ok, Text} = file:read_file(Good),
    Write = fun(Name, Bytes) -> P = filename:join(Dir, Name), ok = file:write_file(P, Bytes), P end,
    Corrupt = [
        Write("truncated.json", binary:part(Text, 0, byte_size(Text) - 10)),
        Write("garbage.json", <<"not json at all">>),
        Write("format.json", <<"{\"format\":\"other\",\"version\":1,\"records\":[]}">>),
        Write("version.json", <<"{\"format\":\"autonomic_kb\",\"version\":9,\"records\":[]}">>),
        Write("strategy.json", binary:replace(Text, <<"supervisor_restart">>, <<"reboot">>)),
        Write("empty_symptom.json", binary:replace(Text, <<"[\"a\"]">>, <<"[\"\"]">>)),
        Write("negative.json", binary:replace(Text, <<"\"recovery_ms\":100">>, <<"\"recovery_ms\":-100">>)),
        Write("extra_key.json", binary:replace(Text, <<"\"success\"">>, <<"\"extra\":1,\"success\"">>)),
        %% Two different records with one id: the whole file is refused.
        Write("conflict.json", conflicting(Text)),
        filename:join(Dir, "missing.json"),
        Dir
    ],
    Before = autonomic_kb:similar([<<"a">>], #{threshold => 0}),
    lists:foreach(fun(P) -> ?assertMatch({P, {error, _}}, {P, autonomic_kb:import(P)}) end, Corrupt),
    ?assertMatch({error, {invalid_file, _}}, autonomic_kb:import(filename:join(Dir, "conflict.json"))),
    ?assertMatch({error, {file_error, read, _, enoent}}, autonomic_kb:import(filename:join(Dir, "missing.json"))),
    ?assertEqual(Before, autonomic_kb:similar([<<"a">>], #{threshold => 0})),
    ?assertEqual(1, autonomic_kb:size()).

%% The exported file with a second record that has the first one's id and other content.
conflicting(Text) ->
    [Header, Rest] = binary:split(Text, <<"[\n">>),
    [Line, _] = binary:split(Rest, <<"\n]}">>),
    Other = binary:replace(Line, <<"\"success\":true">>, <<"\"success\":false">>),
    true = Other =/= Line,
    <<Header/binary, "[\n", Line/binary, ",\n", Other/binary, "\n]}\n">>.

export_errors(Dir) ->
    ?assertMatch({error, {file_error, _, _, enoent}}, autonomic_kb:export(filename:join([Dir, "no", "such", "x.json"]))),
    ?assertMatch({error, {invalid_path, _}}, autonomic_kb:export(42)).

clear_empties_and_refuses_the_past(_Dir) ->
    Past = now_ms(),
    [{ok, _} = autonomic_kb:record(failure([<<"a">>])) || _ <- lists:seq(1, 5)],
    ok = autonomic_kb:clear(),
    ?assertEqual(0, autonomic_kb:size()),
    ?assertEqual([], autonomic_kb:similar([<<"a">>])),
    ?assertEqual({error, {too_old, Past}}, autonomic_kb:record(failure([<<"a">>], #{timestamp => Past}))),
    timer:sleep(2),
    ?assertMatch({ok, _}, autonomic_kb:record(failure([<<"a">>]))),
    ?assertEqual(#{successes => 1, failures => 0, rate => 1.0}, autonomic_kb:success_rate(node_down)).

clean_restart_keeps_everything(Dir) ->
    Ids = [element(2, autonomic_kb:record(failure([<<"r">>, integer_to_binary(I)]))) || I <- lists:seq(1, 200)],
    %% No flush: a clean stop writes the pending records.
    stop_and_start(Dir),
    ?assertEqual(200, autonomic_kb:size()),
    [?assertMatch({ok, _}, autonomic_kb:get(Id)) || Id <- Ids],
    #{loaded := #{loaded := 200}} = autonomic_kb:info().

metrics_are_rendered(_Dir) ->
    {ok, _} = autonomic_kb:record(failure([<<"m">>])),
    _ = autonomic_kb:similar([<<"m">>]),
    Text = iolist_to_binary(autonomic_metrics:render()),
    [?assertNotEqual({Line, nomatch}, {Line, binary:match(Text, Line)})
     || Line <- [<<"autonomic_knowledge_records 1">>, <<"autonomic_knowledge_recorded_total{origin=\"local\"}">>,
                 <<"autonomic_knowledge_queries_total{kind=\"similar\"}">>, <<"autonomic_knowledge_evictions_total{reason=\"limit\"}">>,
                 <<"autonomic_knowledge_symptoms 1">>]].

%%% Other configurations, each with its own application start

not_running_test() ->
    _ = application:stop(autonomic),
    ?assertEqual({error, not_running}, autonomic_kb:similar([<<"a">>])),
    ?assertEqual({error, not_running}, autonomic_kb:record(failure([<<"a">>]))),
    ?assertEqual({error, not_running}, autonomic_kb:size()),
    ?assertEqual({error, not_running}, autonomic_kb:info()).

invalid_config_refuses_to_start_test() ->
    Dir = temp_dir("config"),
    try
        _ = application:stop(autonomic),
        [begin
             ok = application:set_env(autonomic, data_dir, Dir),
             ok = application:set_env(autonomic, Key, Value),
             {error, Why} = application:ensure_all_started(autonomic),
             ?assertNotEqual(nomatch, string:find(io_lib:format("~p", [Why]), "invalid_config")),
             ok = application:unset_env(autonomic, Key)
         end || {Key, Value} <- [{kb_max_records, 0}, {kb_retention_ms, -5}, {kb_flush_ms, fast},
                                 {kb_sync_interval_ms, 0}]]
    after
        stop_app(Dir)
    end.

%% With kb_flush_ms 0, record/1 returns once the record is in the log file.
synchronous_flush_test() ->
    Dir = start_app(temp_dir("sync"), [{kb_flush_ms, 0}]),
    try
        Log = filename:join([Dir, "kb", "kb.log"]),
        {ok, Id} = autonomic_kb:record(failure([<<"durable">>])),
        {ok, Bytes} = file:read_file(Log),
        ?assertNotEqual(nomatch, binary:match(Bytes, Id))
    after
        stop_app(Dir)
    end.

%% A crash of the owner (no terminate, no final flush; its flusher dies with it) loses nothing:
%% the next owner flushes the previous handle's pending records before reading the files.
owner_crash_loses_nothing_test() ->
    Dir = start_app(temp_dir("crash"), [{kb_flush_ms, 60000}]),
    try
        Ids = [element(2, autonomic_kb:record(failure([<<"crash">>, integer_to_binary(I)]))) || I <- lists:seq(1, 50)],
        #{pending_lines := 50} = autonomic_kb:info(),
        Old = whereis(autonomic_kb_server),
        exit(Old, kill),
        ok = autonomic_ct:wait_until(fun() ->
            case whereis(autonomic_kb_server) of
                undefined -> false;
                New -> New =/= Old
            end
        end, 5000),
        #{loaded := #{log_records := 50, loaded := 50}} = autonomic_kb:info(),
        [?assertMatch({ok, _}, autonomic_kb:get(Id)) || Id <- Ids]
    after
        stop_app(Dir)
    end.

%% Records past the retention are removed by the periodic prune (retention / 10, here 100 ms).
retention_tick_test() ->
    Dir = start_app(temp_dir("retention"), [{kb_retention_ms, 1000}]),
    try
        Now = now_ms(),
        ?assertEqual({error, {too_old, Now - 2000}}, autonomic_kb:record(failure([<<"a">>], #{timestamp => Now - 2000}))),
        {ok, _} = autonomic_kb:record(failure([<<"a">>], #{timestamp => Now - 700})),
        {ok, _} = autonomic_kb:record(failure([<<"a">>])),
        ?assertEqual(2, autonomic_kb:size()),
        ok = autonomic_ct:wait_until(fun() -> autonomic_kb:size() =:= 1 end, 2000),
        ok = autonomic_ct:wait_until(fun() -> autonomic_kb:size() =:= 0 end, 3000),
        #{evicted_retention := 2} = autonomic_kb:info()
    after
        stop_app(Dir)
    end.

%% Searches too big for a normal scheduler are handed to a dirty one, with the same answer.
dirty_fallback_test_() ->
    {timeout, 120, fun() ->
        {ok, H} = autonomic_nif:kb_new(#{max_records => 40000}),
        Now = now_ms(),
        Fs = [failure([<<"common">>, integer_to_binary(I rem 100)],
                      #{id => integer_to_binary(I), timestamp => Now - I, success => I rem 3 =/= 0})
              || I <- lists:seq(1, 30000)],
        [{added, _, _} = autonomic_nif:kb_insert(H, F, Now) || F <- Fs],
        Q = [<<"common">>, <<"7">>],
        ?assertEqual(dirty, autonomic_nif:kb_similar(H, Q, 0.0, 10)),
        ?assertEqual(dirty, autonomic_nif:kb_recommend(H, Q, 0.0)),
        Got = autonomic_nif:kb_similar_dirty(H, Q, 0.0, 10),
        ?assertEqual(kb_model:similar(Fs, Q, 0.0, 10), Got),
        ?assertEqual(kb_model:recommend(Fs, Q, 0.0), autonomic_nif:kb_recommend_dirty(H, Q, 0.0)),
        %% The prefix filter keeps the default-threshold query on the normal scheduler.
        ?assertEqual(kb_model:similar(Fs, Q, 0.7, 10), autonomic_nif:kb_similar(H, Q, 0.7, 10)),
        %% Handles are checked.
        ?assertEqual({error, invalid_handle}, autonomic_nif:kb_similar(make_ref(), Q, 0.7, 10)),
        ?assertEqual({error, invalid_handle}, autonomic_nif:kb_size(self()))
    end}.
