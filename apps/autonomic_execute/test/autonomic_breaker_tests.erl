%%% @doc EUnit tests of the circuit breakers on a running application: the requirements the
%%% PropEr model does not cover (no process hop on the fast path, events and metrics, real-time
%%% deadlines, run/2, many concurrent callers, configured breakers) and bad input.
-module(autonomic_breaker_tests).

-include_lib("eunit/include/eunit.hrl").

breaker_test_() ->
    {setup,
        fun() -> execute_test_env:start([{breakers, #{configured => #{threshold => 3}}}]) end,
        fun execute_test_env:stop/1,
        [
            fun ask_is_a_read_without_a_process_hop/0,
            fun state_changes_are_events_and_metrics/0,
            fun open_turns_half_open_on_its_own/0,
            fun run_reports_outcomes/0,
            fun concurrent_failures_open_it_once/0,
            fun configured_breakers_are_installed/0,
            fun bad_input_is_an_error/0
        ]}.

name() ->
    list_to_binary("b" ++ integer_to_list(erlang:unique_integer([positive]))).

%% Requirement 1: while the owner is suspended, closed and open breakers still answer.
ask_is_a_read_without_a_process_hop() ->
    N = name(),
    ok = autonomic_breaker:install(N, #{threshold => 1, reset_ms => 60000}),
    Server = whereis(autonomic_breaker_server),
    ok = sys:suspend(Server),
    try
        ?assertEqual(ok, autonomic_breaker:ask(N)),
        ?assertEqual({error, not_found}, autonomic_breaker:ask(<<"nobody">>))
    after
        ok = sys:resume(Server)
    end,
    ok = autonomic_breaker:melt(N),
    ok = sys:suspend(Server),
    try
        ?assertEqual(blown, autonomic_breaker:ask(N)),
        %% A failure reported while open changes nothing and needs no hop either.
        ?assertEqual(ok, autonomic_breaker:melt(N)),
        ?assertEqual(ok, autonomic_breaker:success(N))
    after
        ok = sys:resume(Server)
    end.

%% Requirement 8.
state_changes_are_events_and_metrics() ->
    N = name(),
    ok = autonomic_events:subscribe(local),
    try
        ok = autonomic_breaker:install(N, #{threshold => 2, window_ms => 60000, reset_ms => 60000}),
        ok = autonomic_breaker:melt(N),
        ?assertEqual(ok, autonomic_breaker:ask(N)),
        ok = autonomic_breaker:melt(N),
        ?assertEqual(blown, autonomic_breaker:ask(N)),
        ?assertEqual(#{breaker => N, from => closed, to => open, reason => failures}, next_change(N)),
        ok = autonomic_breaker:reset(N),
        ?assertEqual(#{breaker => N, from => open, to => closed, reason => reset}, next_change(N)),
        ?assertEqual(1, autonomic_metrics:value(autonomic_breaker_transitions_total,
                                                #{breaker => N, from => closed, to => open})),
        Text = iolist_to_binary(autonomic_metrics:render()),
        ?assertNotEqual(nomatch, binary:match(Text, <<"autonomic_breaker_state{breaker=\"", N/binary, "\"} 0">>)),
        ok = autonomic_breaker:melt(N),
        ok = autonomic_breaker:melt(N),
        Text2 = iolist_to_binary(autonomic_metrics:render()),
        ?assertNotEqual(nomatch, binary:match(Text2, <<"autonomic_breaker_state{breaker=\"", N/binary, "\"} 2">>))
    after
        autonomic_events:unsubscribe()
    end.

%% Requirements 4 to 6 in real time: the timer turns an open breaker half-open with nobody
%% asking; probes; a failed probe reopens; successes close.
open_turns_half_open_on_its_own() ->
    N = name(),
    ok = autonomic_events:subscribe(local),
    try
        ok = autonomic_breaker:install(N, #{threshold => 1, reset_ms => 100, probes => 2, successes => 2}),
        ok = autonomic_breaker:melt(N),
        #{to := open} = next_change(N),
        ?assertMatch(#{from := open, to := half_open, reason := reset_timeout}, next_change(N)),
        ?assertMatch({ok, #{state := half_open, probes_left := 2}}, autonomic_breaker:info(N)),
        ?assertEqual(ok, autonomic_breaker:ask(N)),
        ?assertEqual(ok, autonomic_breaker:ask(N)),
        ?assertEqual(blown, autonomic_breaker:ask(N)),
        ok = autonomic_breaker:melt(N),
        ?assertMatch(#{from := half_open, to := open, reason := probe_failed}, next_change(N)),
        #{to := half_open} = next_change(N),
        ok = autonomic_breaker:success(N),
        ?assertMatch({ok, #{state := half_open, successes := 1}}, autonomic_breaker:info(N)),
        ok = autonomic_breaker:success(N),
        ?assertMatch(#{from := half_open, to := closed, reason := probes_succeeded}, next_change(N)),
        ?assertEqual(ok, autonomic_breaker:ask(N))
    after
        autonomic_events:unsubscribe()
    end.

run_reports_outcomes() ->
    N = name(),
    ok = autonomic_breaker:install(N, #{threshold => 3, window_ms => 60000, reset_ms => 60000}),
    ?assertEqual({ok, 1}, autonomic_breaker:run(N, fun() -> {ok, 1} end)),
    ?assertEqual({error, nope}, autonomic_breaker:run(N, fun() -> {error, nope} end)),
    ?assertMatch({ok, #{failures := 1}}, autonomic_breaker:info(N)),
    ?assertEqual(error, autonomic_breaker:run(N, fun() -> error end)),
    ?assertError(boom, autonomic_breaker:run(N, fun() -> error(boom) end)),
    ?assertMatch({ok, #{state := open}}, autonomic_breaker:info(N)),
    Self = self(),
    ?assertEqual({error, blown}, autonomic_breaker:run(N, fun() -> Self ! ran end)),
    receive ran -> ?assert(false) after 0 -> ok end,
    ?assertEqual({error, not_found}, autonomic_breaker:run(<<"nobody">>, fun() -> ok end)).

%% Many processes fail at once: the breaker opens once (one event), whichever caller completes
%% the threshold.
concurrent_failures_open_it_once() ->
    N = name(),
    ok = autonomic_events:subscribe(local),
    try
        ok = autonomic_breaker:install(N, #{threshold => 100, window_ms => 60000, reset_ms => 60000}),
        Parent = self(),
        Pids = [spawn_link(fun() ->
                               receive go -> ok end,
                               [ok = autonomic_breaker:melt(N) || _ <- lists:seq(1, 50)],
                               Parent ! {done, self()}
                           end) || _ <- lists:seq(1, 20)],
        [P ! go || P <- Pids],
        [receive {done, P} -> ok end || P <- Pids],
        ?assertEqual(blown, autonomic_breaker:ask(N)),
        #{to := open} = next_change(N),
        receive
            {autonomic_event, #{type := breaker_state_changed, detail := #{breaker := N} = D}} ->
                ?assert(false, D)
        after 200 -> ok
        end,
        ?assertMatch({ok, #{transitions := 1}}, autonomic_breaker:info(N))
    after
        autonomic_events:unsubscribe()
    end.

configured_breakers_are_installed() ->
    ?assertMatch({ok, #{state := closed, options := #{threshold := 3, reset_ms := 30000}}},
                 autonomic_breaker:info(configured)),
    ?assert(lists:member({configured, closed}, autonomic_breaker:list())).

bad_input_is_an_error() ->
    ?assertEqual({error, {invalid_name, {x}}}, autonomic_breaker:install({x}, #{})),
    ?assertEqual({error, {invalid_options, []}}, autonomic_breaker:install(x, [])),
    ?assertEqual({error, {unknown_option, colour}}, autonomic_breaker:install(x, #{colour => red})),
    ?assertEqual({error, {invalid_option, threshold, 0}}, autonomic_breaker:install(x, #{threshold => 0})),
    ?assertEqual({error, {invalid_option, reset_ms, -1}}, autonomic_breaker:install(x, #{reset_ms => -1})),
    ?assertEqual({error, {invalid_option, window_ms, 1.5}}, autonomic_breaker:install(x, #{window_ms => 1.5})),
    ?assertEqual({error, {invalid_option, clock, fun erlang:system_time/0}}, autonomic_breaker:install(x, #{clock => fun erlang:system_time/0})),
    ?assertEqual({error, {invalid_option, successes, {more_than_probes, 3, 2}}},
                 autonomic_breaker:install(x, #{probes => 2, successes => 3})),
    ?assertEqual({error, not_found}, autonomic_breaker:ask(x)),
    ?assertEqual({error, not_found}, autonomic_breaker:melt(x)),
    ?assertEqual({error, not_found}, autonomic_breaker:success(x)),
    ?assertEqual({error, not_found}, autonomic_breaker:reset(x)),
    ?assertEqual({error, not_found}, autonomic_breaker:info(x)),
    ?assertEqual({error, {invalid_name, 1}}, autonomic_breaker:info(1)),
    ?assertEqual({error, {invalid_fun, 1}}, autonomic_breaker:run(x, 1)),
    ?assertEqual(ok, autonomic_breaker:remove(x)).

next_change(N) ->
    receive
        {autonomic_event, #{type := breaker_state_changed, detail := #{breaker := N} = D}} -> D
    after 5000 ->
        error(no_breaker_event)
    end.
