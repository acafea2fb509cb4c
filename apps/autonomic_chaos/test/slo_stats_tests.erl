%%% @doc The SLO arithmetic.
-module(slo_stats_tests).
-include_lib("eunit/include/eunit.hrl").

percentile_test_() ->
    L = lists:seq(1, 100),
    [?_assertEqual(99, slo_stats:percentile(L, 99)),
     ?_assertEqual(50, slo_stats:percentile(L, 50)),
     ?_assertEqual(100, slo_stats:percentile(L, 100)),
     ?_assertEqual(7, slo_stats:percentile([7], 99)),
     ?_assertEqual(undefined, slo_stats:percentile([], 99))].

mean_test_() ->
    [?_assertEqual(2.0, slo_stats:mean([1, 2, 3])), ?_assertEqual(undefined, slo_stats:mean([]))].

availability_test_() ->
    [?_assertEqual(0.75, slo_stats:availability([true, true, false, true])),
     ?_assertEqual(1.0, slo_stats:availability([]))].

degradation_test_() ->
    [?_assertEqual(0.25, slo_stats:degradation(100, 75)),
     ?_assertEqual(0.0, slo_stats:degradation(100, 120)),
     ?_assertEqual(1.0, slo_stats:degradation(100, 0)),
     ?_assertEqual(0.0, slo_stats:degradation(undefined, 10))].

compliance_test() ->
    Slo = #{availability => 0.999, mttd_ms => 1000, mttr_ms => 3000, max_degradation => 0.2,
            recovery_success => 0.95, window_ms => 1000},
    C = slo_stats:compliance(Slo, #{availability => 0.9995, mttd_ms => 1200.0, mttr_ms => 2000.0,
                                    max_degradation => 0.1, recovery_success => undefined}),
    ?assertMatch(#{availability := #{ok := true}, mttd_ms := #{ok := false, measured := 1200.0, target := 1000},
                   mttr_ms := #{ok := true}, max_degradation := #{ok := true},
                   recovery_success := #{ok := true, measured := undefined}}, C),
    ?assertNot(maps:is_key(window_ms, C)).
