%%% @doc EUnit: the policy validator. Every field's bad values (wrong type, out of range at each
%%% end, unknown names, duplicates) give exactly one problem naming the field, the value and
%%% why; cross-field rules; N problems are listed as exactly N; defaults; normalization.
-module(autonomic_policy_validate_tests).

-include_lib("eunit/include/eunit.hrl").

-define(V, autonomic_policy_validate).

%% Sets the value at a path, creating maps on the way.
put_in(Map, [K], V) -> Map#{K => V};
put_in(Map, [K | Rest], V) -> Map#{K => put_in(maps:get(K, Map, #{}), Rest, V)}.

at(Map, Path) -> lists:foldl(fun(K, M) -> maps:get(K, M) end, Map, Path).

%% The one problem of a policy that has exactly one.
only_problem(Policy) ->
    case ?V:validate(Policy) of
        {error, [P]} -> P;
        Other -> error({expected_one_problem, Policy, Other})
    end.

why_contains(#{why := Why}, Text) ->
    binary:match(Why, Text) =/= nomatch.

%% {Path, BadValue, text the why must contain}: each alone in an otherwise empty policy gives
%% exactly one problem at Path with that value.
bad_values() ->
    Big = list_to_binary(lists:duplicate(256, $a)),
    [%% top level
     {[name], 42, <<"must be text">>},
     {[name], <<>>, <<"1 to 255 bytes">>},
     {[name], Big, <<"1 to 255 bytes">>},
     {[name], <<255, 0>>, <<"UTF-8">>},
     {[name], [1, 2, 3], <<"must be text">>},
     {[target_system], 42, <<"must be text">>},
     {[colour], blue, <<"unknown key (known: name, target_system, slo">>},
     %% slo
     {[slo], 5, <<"must be a map">>},
     {[slo, availability], 1.0, <<"fraction in [0.5, 1)">>},
     {[slo, availability], 1, <<"fraction in [0.5, 1)">>},
     {[slo, availability], 0.4, <<"fraction in [0.5, 1)">>},
     {[slo, availability], 99.9, <<"{percent, P} with P in [50, 100)">>},
     {[slo, availability], {percent, 100}, <<"fraction in [0.5, 1)">>},
     {[slo, availability], {percent, 49.9}, <<"fraction">>},
     {[slo, availability], {percent, x}, <<"fraction">>},
     {[slo, availability], {percent, 1.0e300}, <<"fraction">>},
     {[slo, availability], <<"high">>, <<"fraction">>},
     {[slo, mttd_ms], 0, <<"whole number of milliseconds from 1 to 4294967295">>},
     {[slo, mttd_ms], -5, <<"milliseconds">>},
     {[slo, mttd_ms], 1.5, <<"whole number">>},
     {[slo, mttd_ms], 4294967296, <<"the longest Erlang timer">>},
     {[slo, mttd_ms], <<"10s">>, <<"milliseconds">>},
     {[slo, mttr_ms], 0, <<"milliseconds">>},
     {[slo, mttr_ms], 4294967296, <<"milliseconds">>},
     {[slo, max_degradation], -0.1, <<"fraction in [0, 1]">>},
     {[slo, max_degradation], 1.01, <<"fraction in [0, 1]">>},
     {[slo, recovery_success], 0, <<"fraction in (0, 1]">>},
     {[slo, recovery_success], 1.5, <<"fraction in (0, 1]">>},
     {[slo, window_ms], 0, <<"from 1 to 31536000000">>},
     {[slo, window_ms], 31536000001, <<"from 1 to 31536000000">>},
     {[slo, bogus], 1, <<"unknown key (known: availability, mttd_ms">>},
     %% failure modes
     {[failure_modes], [], <<"must be a map from failure type">>},
     {[failure_modes, gremlins], #{}, <<"unknown failure type (known: backend_down">>},
     {[failure_modes, <<"node_down">>], #{}, <<"unknown failure type">>},
     {[failure_modes, node_down], fast, <<"must be a map">>},
     {[failure_modes, node_down, recovery_strategies], [], <<"at least one strategy">>},
     {[failure_modes, node_down, recovery_strategies], escalate, <<"must be a list of strategies">>},
     {[failure_modes, node_down, recovery_strategies], [escalate | pause], <<"must be a list">>},
     {[failure_modes, node_down, detection_ms], 0, <<"milliseconds">>},
     {[failure_modes, node_down, recovery_ms], 0, <<"milliseconds">>},
     {[failure_modes, node_down, recovery_ms], 1.0e3, <<"whole number">>},
     {[failure_modes, node_down, severity], severe, <<"unknown a severity (known: low, medium, high, critical)">>},
     {[failure_modes, node_down, bogus], 1, <<"unknown key (known: recovery_strategies">>},
     %% planner
     {[planner], 1, <<"must be a map">>},
     {[planner, slo_budget_ms], 0, <<"number in (0, 1.0e15]">>},
     {[planner, slo_budget_ms], 1.0e16, <<"number in (0">>},
     {[planner, slo_budget_ms], x, <<"number">>},
     {[planner, blast_radius_limit], -1, <<"integer from 0 to 9007199254740992">>},
     {[planner, blast_radius_limit], 1.5, <<"integer">>},
     {[planner, quorum_size], 0, <<"majority">>},
     {[planner, quorum_size], minority, <<"majority">>},
     {[planner, default_recovery_ms], 5, <<"must be a map from strategy to milliseconds">>},
     {[planner, step_ms], -1, <<"number in [0, 1000000000] (milliseconds)">>},
     {[planner, shed_percent], 0, <<"integer from 1 to 100">>},
     {[planner, shed_percent], 101, <<"integer from 1 to 100">>},
     {[planner, shed_percent], 50.0, <<"integer">>},
     {[planner, throttle_percent], 0, <<"integer from 1 to 100">>},
     {[planner, degrade_impact], 1.5, <<"fraction in [0, 1]">>},
     {[planner, allowed], [], <<"derived from failure_modes">>},
     {[planner, bogus], 1, <<"unknown key (known: slo_budget_ms">>},
     %% gates
     {[gates], x, <<"must be a map">>},
     {[gates, error_budget], 0, <<"fraction in (0, 1]">>},
     {[gates, error_budget], 1.5, <<"fraction in (0, 1]">>},
     {[gates, blast_radius], 0.0, <<"fraction in (0, 1]">>},
     {[gates, cooldown_ms], -1, <<"from 0 to 4294967295">>},
     {[gates, capacity_headroom], 1, <<"fraction in [0, 1)">>},
     {[gates, max_incident_rate], 0, <<"number in (0, 1000000]">>},
     {[gates, max_incident_rate], fast, <<"incidents per minute">>},
     {[gates, max_consecutive_failures], 0, <<"integer from 1 to 1000">>},
     {[gates, max_consecutive_failures], 1001, <<"integer from 1 to 1000">>},
     %% loop
     {[loop], [], <<"must be a map">>},
     {[loop, interval_ms], 0, <<"from 1 to 4294967295">>},
     {[loop, interval_ms], infinity, <<"milliseconds">>},
     {[loop, max_cycle_ms], 0, <<"milliseconds">>},
     {[loop, min_confidence], 1.5, <<"fraction in [0, 1]">>},
     {[loop, min_confidence], -0.1, <<"fraction in [0, 1]">>},
     {[loop, lock_ttl_ms], 0, <<"milliseconds">>},
     %% chaos
     {[chaos], on, <<"must be a map">>},
     {[chaos, enabled], yes, <<"true or false">>},
     {[chaos, interval_ms], 0, <<"milliseconds">>},
     {[chaos, duration_ms], 0, <<"milliseconds">>},
     {[chaos, duration_ms], forever, <<"milliseconds">>},
     {[chaos, max_concurrent], 0, <<"integer from 1 to 1000">>},
     {[chaos, pause_on_alert], 1, <<"true or false">>},
     {[chaos, safe_mode], maybe, <<"true or false">>},
     {[chaos, require_approval], "no", <<"true or false">>},
     {[chaos, seed], -1, <<"random or an integer">>},
     {[chaos, seed], 1.5, <<"random or an integer">>},
     {[chaos, seed], 18446744073709551616, <<"2^64 - 1">>},
     {[chaos, weights], [node_kill], <<"map from scenario to weight">>},
     {[chaos, weights], #{}, <<"no scenario has a positive weight">>},
     {[chaos, weights], #{node_kill => 0, process_kill => 0.0}, <<"no scenario has a positive weight">>}].

every_bad_value_is_one_problem_naming_field_value_and_why_test_() ->
    [{lists:flatten(io_lib:format("~w = ~0P", [Path, Value, 8])),
      fun() ->
              P = only_problem(put_in(#{}, Path, Value)),
              ?assertMatch(#{field := Path, value := Value, why := _}, P),
              ?assert(is_binary(maps:get(why, P))),
              ?assert(why_contains(P, Text))
      end}
     || {Path, Value, Text} <- bad_values()].

%% Bad entries inside maps and lists: the problem is at the entry.
entries_test() ->
    #{field := F1, value := V1} = only_problem(#{chaos => #{weights => #{node_kill => -1, process_kill => 1}}}),
    ?assertEqual({[chaos, weights, node_kill], -1}, {F1, V1}),
    P2 = only_problem(#{chaos => #{weights => #{dragons => 1, node_kill => 1}}}),
    ?assertMatch(#{field := [chaos, weights, dragons], value := 1}, P2),
    ?assert(why_contains(P2, <<"unknown scenario (known: backend_error">>)),
    P3 = only_problem(#{chaos => #{weights => #{node_kill => 2.0e6}}}),
    ?assertMatch(#{field := [chaos, weights, node_kill], value := 2.0e6}, P3),
    P4 = only_problem(#{planner => #{default_recovery_ms => #{reboot => 100}}}),
    ?assertMatch(#{field := [planner, default_recovery_ms, reboot], value := 100}, P4),
    P5 = only_problem(#{planner => #{default_recovery_ms => #{throttle => -1}}}),
    ?assertMatch(#{field := [planner, default_recovery_ms, throttle], value := -1}, P5),
    P6 = only_problem(#{planner => #{default_recovery_ms => #{throttle => 2.0e12}}}),
    ?assertMatch(#{field := [planner, default_recovery_ms, throttle]}, P6),
    %% Each bad element of a strategy list is its own problem.
    {error, Ps} = ?V:validate(#{failure_modes => #{node_down => #{recovery_strategies => [reboot, escalate, pray, escalate]}}}),
    Path = [failure_modes, node_down, recovery_strategies],
    ?assertMatch([#{field := Path, value := reboot, why := <<"unknown strategy (known: backend_failover", _/binary>>},
                  #{field := Path, value := pray},
                  #{field := Path, value := escalate, why := <<"listed twice">>}], Ps),
    %% planner.allowed must agree with the failure modes, entry by entry.
    {error, Qs} = ?V:validate(#{planner => #{allowed => #{node_down => [escalate], gremlins => [pause],
                                                          process_crash => [supervisor_restart, escalate]}}}),
    ?assertMatch([#{field := [planner, allowed, gremlins], value := [pause]},
                  #{field := [planner, allowed, node_down], value := [escalate]}], Qs),
    [_, Disagree] = Qs,
    ?assert(why_contains(Disagree, <<"failure_modes.node_down.recovery_strategies ([quorum_reconfiguration,backend_failover,escalate])">>)).

cross_field_rules_test() ->
    P1 = only_problem(#{loop => #{interval_ms => 20000, max_cycle_ms => 10000}}),
    ?assertEqual(#{field => [loop, max_cycle_ms], value => 10000,
                   why => <<"must be at least interval_ms (20000): a cycle may take its whole interval">>}, P1),
    %% The default max_cycle_ms (60 s) is below a long interval: the message says it is the default.
    P2 = only_problem(#{loop => #{interval_ms => 90000}}),
    ?assertMatch(#{field := [loop, max_cycle_ms], value := 60000}, P2),
    ?assert(why_contains(P2, <<"(the default) must be at least interval_ms (90000)">>)),
    P3 = only_problem(#{loop => #{max_cycle_ms => 120000}}),
    ?assertMatch(#{field := [loop, lock_ttl_ms], value := 60000}, P3),
    ?assert(why_contains(P3, <<"at least max_cycle_ms (120000)">>)),
    ?assertMatch({ok, _}, ?V:validate(#{loop => #{max_cycle_ms => 120000, lock_ttl_ms => 120000}})),
    ?assertMatch({ok, _}, ?V:validate(#{loop => #{interval_ms => 60000}})),
    P4 = only_problem(#{slo => #{mttd_ms => 40000}}),
    ?assertMatch(#{field := [slo, mttd_ms], value := 40000}, P4),
    ?assert(why_contains(P4, <<"must not exceed mttr_ms (30000, the default)">>)),
    P5 = only_problem(#{failure_modes => #{process_crash => #{detection_ms => 6000}}}),
    ?assertMatch(#{field := [failure_modes, process_crash, detection_ms], value := 6000}, P5),
    ?assert(why_contains(P5, <<"must not exceed recovery_ms (5000, the default)">>)),
    P6 = only_problem(#{chaos => #{interval_ms => 10000, duration_ms => 5000}}),
    ?assertMatch(#{field := [chaos, duration_ms], value := 5000}, P6),
    ?assertMatch({ok, #{chaos := #{duration_ms := infinity}}},
                 ?V:validate(#{chaos => #{interval_ms => 10000, duration_ms => infinity}})).

%% A rule is not checked when a field it involves is itself invalid: one mistake, one problem.
cross_rules_skip_invalid_fields_test() ->
    P = only_problem(#{loop => #{interval_ms => 0, max_cycle_ms => 5}}),
    ?assertMatch(#{field := [loop, interval_ms], value := 0}, P),
    ?assertMatch(#{field := [slo, mttr_ms]}, only_problem(#{slo => #{mttd_ms => 40000, mttr_ms => 0}})),
    ?assertMatch(#{field := [chaos, interval_ms]},
                 only_problem(#{chaos => #{interval_ms => -1, duration_ms => 1}})).

n_problems_are_listed_as_exactly_n_test() ->
    Policy = #{name => 7,
               colour => red,
               slo => #{availability => 2, mttr_ms => 0, bogus => 1},
               failure_modes => #{gremlins => #{},
                                  node_down => #{recovery_strategies => [reboot, escalate, escalate],
                                                 severity => severe},
                                  process_crash => #{detection_ms => 9000}},
               planner => #{shed_percent => 0, allowed => #{node_down => [pause]}},
               gates => #{error_budget => 0},
               loop => #{interval_ms => 20000, max_cycle_ms => 10000},
               chaos => #{seed => -1, weights => #{node_kill => -1, dragons => 2}}},
    {error, Ps} = ?V:validate(Policy),
    Fields = [F || #{field := F} <- Ps],
    ?assertEqual(lists:sort([[name], [colour],
                  [slo, bogus], [slo, availability], [slo, mttr_ms],
                  [failure_modes, gremlins],
                  [failure_modes, node_down, recovery_strategies],
                  [failure_modes, node_down, recovery_strategies],
                  [failure_modes, node_down, severity],
                  [failure_modes, process_crash, detection_ms],
                  [planner, shed_percent], [planner, allowed, node_down],
                  [gates, error_budget],
                  [loop, max_cycle_ms],
                  [chaos, seed], [chaos, weights, dragons], [chaos, weights, node_kill]]),
                 lists:sort(Fields)),
    ?assertEqual(17, length(Ps)),
    %% Every problem has the three keys and a binary why.
    [?assertMatch(#{field := [_ | _], value := _, why := <<_/binary>>}, P) || P <- Ps].

not_a_map_test() ->
    ?assertMatch({error, [#{field := [], value := [slo], why := <<"a policy is a map", _/binary>>}]},
                 ?V:validate([slo])).

%%% Defaults and normalization

the_empty_policy_is_the_default_policy_test() ->
    {ok, P} = ?V:validate(#{}),
    ?assertEqual(P, ?V:defaults()),
    ?assertEqual(lists:sort(?V:top_keys()), lists:sort(maps:keys(P))),
    ?assertEqual(<<"default">>, maps:get(name, P)),
    ?assertEqual(undefined, maps:get(target_system, P)),
    ?assertEqual(#{availability => 0.999, mttd_ms => 10000, mttr_ms => 30000, max_degradation => 0.2,
                   recovery_success => 0.95, window_ms => 2592000000}, maps:get(slo, P)),
    ?assertEqual(#{error_budget => 0.5, blast_radius => 0.5, cooldown_ms => 10000, capacity_headroom => 0.2,
                   max_incident_rate => 60, max_consecutive_failures => 2}, maps:get(gates, P)),
    ?assertEqual(#{interval_ms => 10000, max_cycle_ms => 60000, min_confidence => 0.7, lock_ttl_ms => 60000},
                 maps:get(loop, P)),
    ?assertEqual(#{enabled => false, interval_ms => 5000, duration_ms => 120000, max_concurrent => 1,
                   pause_on_alert => true, safe_mode => true, require_approval => false, seed => random,
                   weights => maps:from_list([{S, 1} || S <- ?V:scenarios()])},
                 maps:get(chaos, P)),
    %% The failure kinds the loop heals and the seed's root causes all have a mode.
    Modes = maps:get(failure_modes, P),
    [?assert(maps:is_key(T, Modes))
     || T <- [process_crash, node_down, backend_down, tenant_flood, overload, network_partition,
              memory_leak, cpu_saturation, network_issue, disk_full, invalid_config,
              service_unavailable, unknown, default]],
    [begin
         ?assert(D =< R),
         ?assert(lists:member(Sev, ?V:severities())),
         ?assert(S =/= [] andalso S -- ?V:strategies() =:= [])
     end || #{detection_ms := D, recovery_ms := R, severity := Sev, recovery_strategies := S} <- maps:values(Modes)].

%% The planner section is exactly the planner's planner_policy: its keys (quorum_size only when
%% set), `allowed' from the failure modes, and the planner's own defaults.
planner_section_test() ->
    {ok, P} = ?V:validate(#{}),
    Planner = maps:get(planner, P),
    ?assertEqual(?V:planner_keys() -- [quorum_size], lists:sort(maps:keys(Planner))),
    ?assertEqual(maps:map(fun(_, #{recovery_strategies := S}) -> S end, maps:get(failure_modes, P)),
                 maps:get(allowed, Planner)),
    ?assertMatch(#{slo_budget_ms := 300000.0, blast_radius_limit := 100, step_ms := 100.0, shed_percent := 25,
                   throttle_percent := 50, degrade_impact := 0.3}, Planner),
    %% The planner's defaults for its own failure types are kept.
    Allowed = maps:get(allowed, Planner),
    ?assertEqual([quorum_reconfiguration, backend_failover, escalate], maps:get(node_down, Allowed)),
    ?assertEqual([throttle, load_shedding, graceful_degradation, escalate], maps:get(overload, Allowed)),
    ?assertEqual([supervisor_restart, throttle, escalate], maps:get(default, Allowed)),
    {ok, Q} = ?V:validate(#{planner => #{quorum_size => 3},
                            failure_modes => #{node_down => #{recovery_strategies => [backend_failover]}}}),
    ?assertEqual(3, at(Q, [planner, quorum_size])),
    ?assertEqual([backend_failover], at(Q, [planner, allowed, node_down])),
    {ok, M} = ?V:validate(#{planner => #{quorum_size => majority}}),
    ?assertNot(maps:is_key(quorum_size, maps:get(planner, M))),
    %% default_recovery_ms is merged over the planner's defaults.
    {ok, R} = ?V:validate(#{planner => #{default_recovery_ms => #{throttle => 250}}}),
    ?assertEqual(250, at(R, [planner, default_recovery_ms, throttle])),
    ?assertEqual(5000.0, at(R, [planner, default_recovery_ms, backend_failover])).

%% When the planner is part of the build, its defaults are the policy's, and it takes the
%% policy's planner section as its planner_policy.
planner_agrees_test_() ->
    Planner = autonomic_planner_builtin,
    case code:ensure_loaded(Planner) of
        {module, Planner} ->
            {ok, P} = ?V:validate(#{}),
            #{allowed := Allowed, default_recovery_ms := Recovery} = Section = maps:get(planner, P),
            [?_assertEqual(maps:get(default_recovery_ms, Section), Planner:default_recovery_ms()),
             ?_assertEqual(Recovery, Planner:default_recovery_ms()),
             ?_assertEqual(maps:with(maps:keys(Planner:default_allowed()), Allowed), Planner:default_allowed()),
             ?_assertMatch({ok, #{strategy := _}},
                           Planner:plan(#{analysis => #{failure_type => node_down, confidence => 0.9},
                                          topology => #{nodes => [#{name => 'a@h'}]},
                                          policy => Section}))];
        _ ->
            []
    end.

fields_merge_over_the_defaults_test() ->
    {ok, P} = ?V:validate(#{failure_modes => #{node_down => #{severity => low}},
                            chaos => #{weights => #{node_kill => 3}}}),
    ?assertEqual(#{recovery_strategies => [quorum_reconfiguration, backend_failover, escalate],
                   detection_ms => 5000, recovery_ms => 30000, severity => low},
                 at(P, [failure_modes, node_down])),
    %% Weights replace the defaults: the scenarios not listed are never chosen.
    ?assertEqual(3, at(P, [chaos, weights, node_kill])),
    ?assertEqual(0, at(P, [chaos, weights, process_kill])),
    ?assertEqual(lists:sort(?V:scenarios()), lists:sort(maps:keys(at(P, [chaos, weights])))).

accepted_forms_test() ->
    {ok, P} = ?V:validate(#{name => "prod", target_system => <<"jobs">>,
                            slo => #{availability => {percent, 99.9}, max_degradation => {percent, 20},
                                     recovery_success => 1},
                            gates => #{blast_radius => 1, capacity_headroom => 0},
                            chaos => #{seed => 18446744073709551615}}),
    ?assertEqual(<<"prod">>, maps:get(name, P)),
    ?assertEqual(<<"jobs">>, maps:get(target_system, P)),
    %% {percent, P} is exact: 99.9 % is the float 0.999.
    ?assertEqual(0.999, at(P, [slo, availability])),
    ?assertEqual(0.2, at(P, [slo, max_degradation])),
    %% Fractions are floats.
    ?assertEqual(1.0, at(P, [slo, recovery_success])),
    ?assertEqual(1.0, at(P, [gates, blast_radius])),
    ?assertEqual(0.0, at(P, [gates, capacity_headroom])),
    ?assertEqual(18446744073709551615, at(P, [chaos, seed])).

normalizing_twice_changes_nothing_test() ->
    Inputs = [#{},
              #{slo => #{availability => {percent, 99.95}}, planner => #{quorum_size => majority}},
              #{name => "x", failure_modes => #{unknown => #{recovery_strategies => [escalate]}},
                chaos => #{duration_ms => infinity, weights => #{cpu_saturation => 0.5}}}],
    [begin
         {ok, P} = ?V:validate(In),
         ?assertEqual({ok, P}, ?V:validate(P))
     end || In <- Inputs].

vocabulary_test() ->
    ?assertEqual([backend_failover, escalate, graceful_degradation, load_shedding, pause,
                  quorum_reconfiguration, supervisor_restart, throttle], ?V:strategies()),
    ?assertEqual(lists:usort(?V:failure_types()), ?V:failure_types()),
    ?assertEqual(4294967295, ?V:max_timer_ms()).
