%%% @doc Which events detect which fault (pure part of the scenarios).
-module(chaos_scenarios_tests).
-include_lib("eunit/include/eunit.hrl").

ev(Type, Node, Detail) ->
    #{type => Type, node => Node, at => 1, detail => Detail}.

node_kill_test() ->
    F = #{scenario => node_kill, victim => b},
    ?assert(chaos_scenarios:detects(F, ev(node_down, a, #{peer => b, reason => connection_closed}))),
    ?assert(chaos_scenarios:detects(F, ev(node_suspected, a, #{peer => b}))),
    ?assertNot(chaos_scenarios:detects(F, ev(node_down, a, #{peer => c}))).

process_kill_test() ->
    F = #{scenario => process_kill, victim => b},
    ?assert(chaos_scenarios:detects(F, ev(failure_reported, b, #{kind => process_crash}))),
    ?assertNot(chaos_scenarios:detects(F, ev(failure_reported, c, #{kind => process_crash}))),
    ?assertNot(chaos_scenarios:detects(F, ev(failure_reported, b, #{kind => cpu_saturation}))).

partition_test() ->
    F = #{scenario => network_partition, victim => {[e], [a, b, c, d]}},
    ?assert(chaos_scenarios:detects(F, ev(node_down, a, #{peer => e}))),
    ?assert(chaos_scenarios:detects(F, ev(minority_entered, e, #{}))),
    ?assertNot(chaos_scenarios:detects(F, ev(node_down, a, #{peer => b}))).

resources_test() ->
    M = #{scenario => memory_pressure, victim => d},
    ?assert(chaos_scenarios:detects(M, ev(resource_exhausted, d, #{resource => memory}))),
    ?assertNot(chaos_scenarios:detects(M, ev(resource_exhausted, a, #{resource => memory}))),
    C = #{scenario => cpu_saturation, victim => d},
    ?assert(chaos_scenarios:detects(C, ev(failure_reported, d, #{kind => cpu_saturation}))),
    ?assert(chaos_scenarios:detects(C, ev(resource_exhausted, a, #{resource => cpu}))).

loop_incident_names_the_victim_test() ->
    F = #{scenario => memory_pressure, victim => d},
    ?assert(chaos_scenarios:detects(F, ev(incident_detected, a, #{target => {resource, d, memory}}))),
    %% A leftover incident about another node is not this fault's detection.
    ?assertNot(chaos_scenarios:detects(F, ev(incident_detected, a, #{target => {resource, c, memory}}))),
    ?assert(chaos_scenarios:detects(#{scenario => cpu_saturation, victim => d},
                                    ev(incident_detected, a, #{target => {resource, c, cpu}}))).

unrelated_events_test() ->
    ?assertNot(chaos_scenarios:detects(#{scenario => node_kill, victim => b}, ev(policy_changed, a, #{}))).
