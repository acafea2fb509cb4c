%%% @doc EUnit tests of priority shedding: over 100,000 requests the rejected fraction is within 2
%%% percentage points of the target, whatever the mix of priorities, with the requests below the
%%% threshold shed first; from one process and from several at once; and bad input.
-module(autonomic_shed_tests).

-include_lib("eunit/include/eunit.hrl").

-define(N, 100000).

shed_test_() ->
    {setup,
        fun execute_test_env:start/0,
        fun execute_test_env:stop/1,
        [
            fun all_low_priority/0,
            fun enough_low_priority_spares_the_high/0,
            fun too_little_low_priority_spills_over/0,
            fun concurrent_callers/0,
            fun settings/0,
            fun bad_input_is_an_error/0
        ]}.

%% Every request below the threshold: the target fraction of them is shed.
all_low_priority() ->
    [begin
         {ok, _} = autonomic_shed:set(Pct, 10),
         {Low, High} = run(0.0),
         ?assertEqual({0, 0}, High),
         within(Pct, Low, High)
     end || Pct <- [0, 1, 10, 25, 33, 50, 77, 99, 100]],
    {ok, _} = autonomic_shed:clear().

%% 70% of the requests below the threshold, 50% to shed: only they are shed (5/7 of them), and
%% the requests at or above the threshold all pass.
enough_low_priority_spares_the_high() ->
    {ok, _} = autonomic_shed:set(50, 5),
    {{LowSeen, LowRejected} = Low, {HighSeen, HighRejected} = High} = run(0.3),
    ?assertEqual(0, HighRejected),
    ?assert(HighSeen > 25000),
    within(50, Low, High),
    ?assert(abs(100 * LowRejected / LowSeen - 100 * 5 / 7) =< 2),
    {ok, _} = autonomic_shed:clear().

%% 30% below the threshold, 50% to shed: all of them, and 2/7 of the others.
too_little_low_priority_spills_over() ->
    {ok, _} = autonomic_shed:set(50, 5),
    {{LowSeen, LowRejected} = Low, {HighSeen, HighRejected} = High} = run(0.7),
    within(50, Low, High),
    ?assert(LowRejected >= LowSeen - 64),
    ?assert(abs(100 * HighRejected / HighSeen - 100 * 2 / 7) =< 2),
    {ok, _} = autonomic_shed:clear().

%% Eight processes at once, 100,000 requests in all, 40% below the threshold, 25% to shed.
concurrent_callers() ->
    {ok, _} = autonomic_shed:set(25, 5),
    Parent = self(),
    Pids = [spawn_link(fun() ->
                           rand:seed(exsss, {I, I, I}),
                           receive go -> ok end,
                           Parent ! {self(), run(?N div 8, 0.6, {0, 0}, {0, 0})}
                       end) || I <- lists:seq(1, 8)],
    [P ! go || P <- Pids],
    Results = [receive {P, R} -> R end || P <- Pids],
    Low = lists:foldl(fun({{S, R}, _}, {S0, R0}) -> {S0 + S, R0 + R} end, {0, 0}, Results),
    High = lists:foldl(fun({_, {S, R}}, {S0, R0}) -> {S0 + S, R0 + R} end, {0, 0}, Results),
    within(25, Low, High),
    ?assertEqual(0, element(2, High)),
    {ok, _} = autonomic_shed:clear().

settings() ->
    {ok, off} = autonomic_shed:set(20, 3),
    ?assertEqual({20, 3}, autonomic_shed:get()),
    ?assertEqual({ok, {20, 3}}, autonomic_shed:set(40, 7)),
    ?assertEqual({ok, {40, 7}}, autonomic_shed:clear()),
    ?assertEqual(off, autonomic_shed:get()),
    [?assert(autonomic_shed:admit(P)) || P <- lists:seq(-5, 5)],
    #{admitted := A} = autonomic_shed:stats(),
    ?assert(A > 0).

bad_input_is_an_error() ->
    ?assertEqual({error, {invalid_priority, low}}, autonomic_shed:admit(low)),
    ?assertEqual({error, {invalid_priority, 1.5}}, autonomic_shed:admit(1.5)),
    ?assertEqual({error, {invalid_percent, 101}}, autonomic_shed:set(101, 3)),
    ?assertEqual({error, {invalid_percent, -1}}, autonomic_shed:set(-1, 3)),
    ?assertEqual({error, {invalid_percent, 0.5}}, autonomic_shed:set(0.5, 3)),
    ?assertEqual({error, {invalid_priority, x}}, autonomic_shed:set(10, x)),
    ?assertEqual(off, autonomic_shed:get()).

%%% Helpers

%% ?N requests, each above the threshold with probability HighShare (seeded: the same mix every
%% run). Returns {{LowSeen, LowRejected}, {HighSeen, HighRejected}}.
run(HighShare) ->
    rand:seed(exsss, {1, 2, 3}),
    run(?N, HighShare, {0, 0}, {0, 0}).

run(0, _HighShare, Low, High) ->
    {Low, High};
run(N, HighShare, {LS, LR}, {HS, HR}) ->
    case rand:uniform() < HighShare of
        true ->
            Admitted = autonomic_shed:admit(5 + rand:uniform(3) - 1),
            run(N - 1, HighShare, {LS, LR}, {HS + 1, HR + rejected(Admitted)});
        false ->
            Admitted = autonomic_shed:admit(rand:uniform(5) - 1),
            run(N - 1, HighShare, {LS + 1, LR + rejected(Admitted)}, {HS, HR})
    end.

rejected(true) -> 0;
rejected(false) -> 1.

%% The rejected share of all requests is within 2 points of Pct.
within(Pct, {LS, LR}, {HS, HR}) ->
    Share = 100 * (LR + HR) / (LS + HS),
    ?assert(abs(Share - Pct) =< 2, {Pct, Share}).

%% Stopping the application stops shedding (the counters outlive it in a persistent term).
stopped_application_sheds_nothing_test() ->
    Env = execute_test_env:start(),
    {ok, off} = autonomic_shed:set(100, 10),
    ?assertNot(autonomic_shed:admit(1)),
    execute_test_env:stop(Env),
    ?assert(autonomic_shed:admit(1)).
