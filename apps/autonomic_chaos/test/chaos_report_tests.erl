%%% @doc The chaos report: totals, times, per scenario, JSON, text.
-module(chaos_report_tests).
-include_lib("eunit/include/eunit.hrl").

fault(Id, S, Outcome, D, R) ->
    #{id => Id, scenario => S, victim => n1, injected_at => 1000, outcome => Outcome,
      detected_at => case D of undefined -> undefined; _ -> 1000 + D end, healed_at => 4000,
      mttd_ms => D, mttr_ms => R, timeline => [#{at => 1000, what => injected}, #{at => 1000 + 5, what => {detected, node_down, n2}}]}.

build_test() ->
    Faults = [fault(1, node_kill, recovered, 10, 200), fault(2, node_kill, recovered, 30, 400),
              fault(3, process_kill, failed, undefined, undefined),
              (fault(4, process_kill, undefined, undefined, undefined))#{healed_at := undefined}],
    R = chaos_report:build(Faults, #{availability => 0.9996, max_degradation => 0.1, seed => 42, probes => 100}),
    ?assertMatch(#{total_events := 4, successful_recoveries := 2, failed_recoveries := 1, undetected := 1,
                   seed := 42, availability := 0.9996}, R),
    ?assertEqual(2 / 3, maps:get(recovery_success_rate, R)),
    ?assertMatch(#{mean := 20.0, p99 := 30, count := 2}, maps:get(mttd_ms, R)),
    ?assertMatch(#{mean := 300.0, p99 := 400}, maps:get(mttr_ms, R)),
    ?assertMatch(#{node_kill := #{events := 2, recovered := 2}, process_kill := #{events := 1, recovered := 0}},
                 maps:get(by_scenario, R)),
    [E1 | _] = maps:get(events, R),
    ?assertMatch(#{id := 1, healed_ms := 3000, timeline := [#{at_ms := 0, what := injected}, #{at_ms := 5}]}, E1),
    Json = chaos_report:to_json(R),
    ?assertMatch({match, _}, re:run(Json, "\"total_events\":4")),
    ?assertMatch({match, _}, re:run(Json, "\"outcome\":null")),
    Text = iolist_to_binary(chaos_report:to_text(R)),
    ?assertMatch({match, _}, re:run(Text, "events: 4, recovered: 2, failed: 1")),
    ?assertMatch({match, _}, re:run(Text, "99.960%")).
