%%% @doc EUnit tests of graceful degradation on a running node: features turn off in the levels
%%% registered for them, `autonomic:feature_enabled/1' reads it, the manual level, and the
%%% automatic level from rules over the real monitor's samples (this node's process count moved
%%% by real processes), stepping back one level at a time after the calm period.
-module(autonomic_degrade_tests).

-include_lib("eunit/include/eunit.hrl").

-define(CALM_MS, 300).

degrade_test_() ->
    {setup,
        fun() ->
            ok = application:set_env(autonomic_monitor, sample_interval_ms, 100),
            ok = application:set_env(autonomic_monitor, top_k, 0),
            %% Periodic evaluation every 50 ms; the rules are set by the tests.
            execute_test_env:start([{degrade_interval_ms, 50}, {degrade_calm_ms, ?CALM_MS}])
        end,
        fun(Env) ->
            execute_test_env:stop(Env),
            ok = application:unset_env(autonomic_monitor, sample_interval_ms),
            ok = application:unset_env(autonomic_monitor, top_k)
        end,
        [
            fun features_follow_the_level/0,
            {timeout, 30, fun rules_over_monitor_samples/0},
            fun bad_input_is_an_error/0
        ]}.

features_follow_the_level() ->
    ok = autonomic_degrade:register_feature(recommendations, [degraded, minimal, emergency]),
    ok = autonomic_degrade:register_feature(<<"search">>, [minimal, emergency]),
    ok = autonomic_degrade:register_feature(checkout, []),
    ?assertEqual(normal, autonomic_degrade:level()),
    ?assert(autonomic:feature_enabled(recommendations)),
    ?assert(autonomic:feature_enabled(never_registered)),
    ok = autonomic_events:subscribe(local),
    try
        ?assertEqual({ok, normal}, autonomic_degrade:set_level(degraded)),
        ?assertEqual({false, true, true},
                     {autonomic:feature_enabled(recommendations), autonomic:feature_enabled(<<"search">>),
                      autonomic:feature_enabled(checkout)}),
        ?assertMatch(#{from := normal, to := degraded, manual := degraded, cause := manual}, next_change()),
        ?assertEqual({ok, degraded}, autonomic_degrade:set_level(emergency)),
        ?assertEqual({false, false, true},
                     {autonomic:feature_enabled(recommendations), autonomic:feature_enabled(<<"search">>),
                      autonomic:feature_enabled(checkout)}),
        ?assertEqual(3, autonomic_metrics:value(autonomic_degrade_level, #{})),
        %% A feature registered while degraded starts in the right state.
        ok = autonomic_degrade:register_feature(late, [emergency]),
        ?assertNot(autonomic:feature_enabled(late)),
        ?assertEqual({ok, emergency}, autonomic_degrade:set_level(normal)),
        ?assert(autonomic:feature_enabled(late)),
        ?assert(autonomic:feature_enabled(recommendations)),
        ok = autonomic_degrade:unregister_feature(late),
        ?assertNot(lists:keymember(late, 1, autonomic_degrade:features()))
    after
        autonomic_events:unsubscribe()
    end.

%% Rules on this node's process usage (percent of the process limit): real processes raise it.
rules_over_monitor_samples() ->
    Limit = erlang:system_info(process_limit),
    Used = 100 * erlang:system_info(process_count) / Limit,
    %% Two thresholds, 2% and 4% of the limit above what is used now.
    Step = 2.0,
    Extra = spawn_idle(round(Limit * (2 * Step + 1) / 100)),
    %% A sample with all of them (the sampler's own samples may catch a spawn half way) before
    %% the rules exist: the first evaluation sees the full count.
    _ = mape_k_resources:sample_now(),
    flush(),
    ok = autonomic_events:subscribe(local),
    ok = autonomic_degrade:set_rules([#{metric => processes, above => Used + Step, level => degraded},
                                      #{metric => processes, above => Used + 2 * Step, level => minimal}]),
    try
        %% Straight to minimal: a rule that fires raises the level at once.
        ?assertMatch(#{from := normal, to := minimal, cause := rules}, next_change()),
        ?assertEqual(minimal, maps:get(auto, autonomic_degrade:info())),
        %% Back under both thresholds: one level per calm period.
        [exit(P, kill) || P <- Extra],
        #{to := degraded} = Down1 = next_change(),
        T1 = erlang:monotonic_time(millisecond),
        #{to := normal} = next_change(),
        T2 = erlang:monotonic_time(millisecond),
        ?assertMatch(#{from := minimal, cause := rules}, Down1),
        ?assert(T2 - T1 >= ?CALM_MS, {T1, T2}),
        %% The manual level is a floor the rules cannot lower.
        {ok, normal} = autonomic_degrade:set_level(degraded),
        #{to := degraded} = next_change(),
        Extra2 = spawn_idle(round(Limit * (2 * Step + 1) / 100)),
        #{to := minimal} = next_change(),
        [exit(P, kill) || P <- Extra2],
        #{to := degraded} = next_change(),
        receive
            {autonomic_event, #{type := degradation_level_changed} = E} -> ?assert(false, E)
        after 3 * ?CALM_MS -> ok
        end,
        ?assertEqual(degraded, autonomic_degrade:level()),
        {ok, degraded} = autonomic_degrade:set_level(normal)
    after
        autonomic_events:unsubscribe(),
        ok = autonomic_degrade:set_rules([])
    end.

bad_input_is_an_error() ->
    ?assertEqual({error, {invalid_level, panic}}, autonomic_degrade:set_level(panic)),
    ?assertEqual({error, {invalid_feature, {x}}}, autonomic_degrade:register_feature({x}, [minimal])),
    ?assertEqual({error, {invalid_levels, [panic]}}, autonomic_degrade:register_feature(x, [panic])),
    ?assertEqual({error, {invalid_levels, minimal}}, autonomic_degrade:register_feature(x, minimal)),
    ?assertEqual({error, {invalid_rule, x}}, autonomic_degrade:set_rules([x])),
    ?assertNot(lists:keymember(x, 1, autonomic_degrade:features())).

flush() ->
    receive {autonomic_event, _} -> flush() after 0 -> ok end.

spawn_idle(N) ->
    [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, N)].

next_change() ->
    receive
        {autonomic_event, #{type := degradation_level_changed, detail := D}} -> D
    after 10000 ->
        error(no_level_change)
    end.
