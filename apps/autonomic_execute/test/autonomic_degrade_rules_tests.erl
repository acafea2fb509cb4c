%%% @doc EUnit tests of the pure degradation logic: level order, rule validation, the target level
%%% of a resource sample, and the step function (raise at once, lower one level per calm period).
-module(autonomic_degrade_rules_tests).

-include_lib("eunit/include/eunit.hrl").

-define(RULES, [#{metric => memory, above => 80, level => degraded},
                #{metric => memory, above => 90, level => minimal},
                #{metric => run_queue, above => 100, level => emergency},
                #{metric => disk, above => 95, level => minimal},
                #{metric => scheduler_utilization, above => 99, level => degraded}]).

sample(Memory, RunQueue) ->
    #{usage_percent => #{memory => Memory, processes => 1.0, {disk, "/"} => 50.0, {disk, "/data"} => 96.5},
      run_queue => RunQueue, scheduler_utilization => 0.5}.

levels_test() ->
    ?assertEqual([normal, degraded, minimal, emergency], autonomic_degrade_rules:levels()),
    ?assertEqual(minimal, autonomic_degrade_rules:worse(degraded, minimal)),
    ?assertEqual(emergency, autonomic_degrade_rules:worse(emergency, normal)),
    ?assert(autonomic_degrade_rules:valid_level(minimal)),
    ?assertNot(autonomic_degrade_rules:valid_level(panic)).

validate_test() ->
    ?assertEqual(ok, autonomic_degrade_rules:validate(?RULES)),
    ?assertEqual(ok, autonomic_degrade_rules:validate([])),
    Bad = [#{metric => temperature, above => 1, level => degraded},
           #{metric => memory, above => high, level => degraded},
           #{metric => memory, above => 1, level => normal},
           #{metric => memory, above => 1, level => degraded, extra => 1},
           #{metric => memory, level => degraded},
           {memory, 1, degraded}],
    [?assertEqual({error, {invalid_rule, B}}, autonomic_degrade_rules:validate([B])) || B <- Bad],
    ?assertEqual({error, {invalid_rule, rules}}, autonomic_degrade_rules:validate(rules)).

target_test() ->
    %% The fullest disk (96.5%) fires its rule, minimal.
    ?assertEqual(minimal, autonomic_degrade_rules:target(?RULES, sample(10, 0))),
    Rules = [R || #{metric := M} = R <- ?RULES, M =/= disk],
    ?assertEqual(normal, autonomic_degrade_rules:target([hd(?RULES)], sample(80, 0))),
    ?assertEqual(degraded, autonomic_degrade_rules:target([hd(?RULES)], sample(80.1, 0))),
    ?assertEqual(emergency, autonomic_degrade_rules:target(?RULES, sample(95, 101))),
    ?assertEqual(normal, autonomic_degrade_rules:target(Rules, sample(10, 0))),
    %% Metrics missing from a sample fire nothing.
    ?assertEqual(normal, autonomic_degrade_rules:target(?RULES, #{})),
    ?assertEqual(50.0, autonomic_degrade_rules:metric(scheduler_utilization, sample(1, 1))),
    ?assertEqual(96.5, autonomic_degrade_rules:metric(disk, sample(1, 1))),
    ?assertEqual(undefined, autonomic_degrade_rules:metric(cpu, sample(1, 1))).

step_test() ->
    A0 = #{level => normal, calm_since => undefined},
    Calm = 1000,
    %% Up at once, even by several levels.
    A1 = autonomic_degrade_rules:step(A0, minimal, 0, Calm),
    ?assertEqual(#{level => minimal, calm_since => undefined}, A1),
    %% Asking for less starts the calm period; one level after it, then another period.
    A2 = autonomic_degrade_rules:step(A1, normal, 100, Calm),
    ?assertEqual(#{level => minimal, calm_since => 100}, A2),
    A3 = autonomic_degrade_rules:step(A2, normal, 1099, Calm),
    ?assertEqual(minimal, maps:get(level, A3)),
    A4 = autonomic_degrade_rules:step(A3, normal, 1100, Calm),
    ?assertEqual(#{level => degraded, calm_since => 1100}, A4),
    A5 = autonomic_degrade_rules:step(A4, normal, 1500, Calm),
    ?assertEqual(degraded, maps:get(level, A5)),
    %% A sample asking for the current level again ends the calm period.
    A6 = autonomic_degrade_rules:step(A5, degraded, 1600, Calm),
    ?assertEqual(#{level => degraded, calm_since => undefined}, A6),
    A7 = autonomic_degrade_rules:step(A6, normal, 2000, Calm),
    ?assertEqual(degraded, maps:get(level, autonomic_degrade_rules:step(A7, normal, 2999, Calm))),
    ?assertEqual(#{level => normal, calm_since => 3000}, autonomic_degrade_rules:step(A7, normal, 3000, Calm)),
    %% A higher target during a calm period raises at once.
    ?assertEqual(#{level => emergency, calm_since => undefined}, autonomic_degrade_rules:step(A7, emergency, 2500, Calm)).
