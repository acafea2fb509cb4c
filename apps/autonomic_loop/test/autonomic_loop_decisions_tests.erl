%%% @doc The loop's other pure decisions: analysis rules and confidence
%%% ({@link autonomic_loop_analyze}), the safety gates ({@link autonomic_loop_gates}), crash
%%% recovery from journal receipts ({@link autonomic_loop_recovery}), strategy choice
%%% ({@link autonomic_loop_act:strategies/2}) and service specs.
-module(autonomic_loop_decisions_tests).

-include_lib("eunit/include/eunit.hrl").

-define(N, 'a@h').

ev(Type, Detail) -> #{type => Type, node => ?N, at => 1000, detail => Detail}.

input(Events, Services) ->
    #{events => Events, services => Services, quorum => #{members => [?N, 'b@h'], reachable => [?N], connected => []},
      now => 2000}.

wl_spec() -> #{supervisor => wl_sup, checks => [db_check], backend => db, depends_on => []}.

%%% Analyze

service_down_is_a_process_crash_test() ->
    [I] = autonomic_loop_analyze:incidents(input([ev(failure_reported, #{kind => service_down, service => wl, reason => shutdown})],
                                                 [{?N, wl, wl_spec(), up}])),
    ?assertMatch(#{failure_type := process_crash, root_cause := service_unavailable, target := {service, ?N, wl},
                   service := wl, detected_at := 1000}, I),
    ?assert(maps:get(confidence, I) >= 0.7).

snapshot_and_event_are_one_incident_test() ->
    %% The registry still says down and the event says so: one incident, the earliest time.
    [I] = autonomic_loop_analyze:incidents(input([ev(failure_reported, #{kind => service_down, service => wl})],
                                                 [{?N, wl, wl_spec(), down}])),
    ?assertEqual(1000, maps:get(detected_at, I)).

backend_down_maps_to_the_service_backend_test() ->
    [I] = autonomic_loop_analyze:incidents(input([ev(backend_down, #{check => db_check, reason => timeout})],
                                                 [{?N, wl, wl_spec(), up}])),
    ?assertMatch(#{failure_type := backend_down, target := {backend, ?N, db}, service := wl}, I).

node_down_only_while_gone_test() ->
    Down = ev(node_down, #{peer => 'b@h', reason => connection_closed}),
    ?assertMatch([#{failure_type := node_down, target := {node, 'b@h'}}], autonomic_loop_analyze:incidents(input([Down], []))),
    Back = (input([Down], []))#{quorum => #{members => [?N, 'b@h'], reachable => [?N, 'b@h'], connected => ['b@h']}},
    ?assertEqual([], autonomic_loop_analyze:incidents(Back)).

tenant_flood_targets_the_tenant_test() ->
    [I] = autonomic_loop_analyze:incidents(input([ev(failure_reported, #{kind => tenant_flood, tenant => <<"t">>, service => wl})],
                                                 [{?N, wl, wl_spec(), up}])),
    ?assertMatch(#{failure_type := tenant_flood, root_cause := cpu_saturation, target := {tenant, ?N, <<"t">>}}, I).

unknown_has_low_confidence_until_learned_test() ->
    [I] = autonomic_loop_analyze:incidents(input([ev(failure_reported, #{kind => odd, service => wl})], [])),
    ?assertMatch(#{failure_type := unknown, root_cause := unknown}, I),
    ?assert(maps:get(confidence, autonomic_loop_analyze:confidence(I, [])) < 0.7),
    Success = #{failure_type => unknown, success => true},
    Failure = #{failure_type => unknown, success => false},
    Other = #{failure_type => node_down, success => true},
    %% Failures and other types are no evidence.
    ?assert(maps:get(confidence, autonomic_loop_analyze:confidence(I, [{1.0, Failure}, {1.0, Other}])) < 0.7),
    %% Five identical successes are.
    Learned = autonomic_loop_analyze:confidence(I, [{1.0, Success} || _ <- lists:seq(1, 5)]),
    ?assert(maps:get(confidence, Learned) >= 0.7),
    ?assert(maps:get(confidence, Learned) =< 1.0).

two_types_on_one_target_are_two_incidents_test() ->
    Is = autonomic_loop_analyze:incidents(input([ev(failure_reported, #{kind => process_crash, service => wl}),
                                                 ev(failure_reported, #{kind => memory_leak, service => wl})], [])),
    ?assertEqual([memory_leak, process_crash], lists:sort([F || #{failure_type := F} <- Is])),
    ?assertEqual(1, length(lists:usort([T || #{target := T} <- Is]))).

%%% Gates

gates() ->
    #{error_budget => 0.5, blast_radius => 0.5, cooldown_ms => 1000, capacity_headroom => 0.2,
      max_incident_rate => 60, max_consecutive_failures => 2}.

ctx() ->
    #{now => 10000, last_end => undefined, consecutive_failures => 0, incidents_last_minute => 1,
      budget_ms => 1000, spent_ms => 0, estimated_downtime_ms => 100, disrupted => 1, services => 5, headroom => 0.5}.

all_pass_test() ->
    R = autonomic_loop_gates:evaluate(ctx(), gates()),
    ?assertEqual(autonomic_loop_gates:names(), [G || {G, _} <- R]),
    ?assertEqual(pass, autonomic_loop_gates:decision(R)).

each_gate_fails_test_() ->
    Cases = [{consecutive_failures, #{consecutive_failures => 3}},
             {incident_rate, #{incidents_last_minute => 61}},
             {error_budget, #{spent_ms => 900}},
             {blast_radius, #{disrupted => 3}},
             {capacity_headroom, #{headroom => 0.1}}],
    [?_assertMatch({review, [{Gate, {fail, _}}]},
                   autonomic_loop_gates:decision(autonomic_loop_gates:evaluate(maps:merge(ctx(), Over), gates())))
     || {Gate, Over} <- Cases].

two_failures_are_still_allowed_test() ->
    %% "More than 2 consecutive failures": the third attempt still runs, the fourth waits.
    ?assertEqual(pass, autonomic_loop_gates:decision(autonomic_loop_gates:evaluate((ctx())#{consecutive_failures => 2}, gates()))).

cooldown_waits_test() ->
    R = autonomic_loop_gates:evaluate((ctx())#{last_end => 9400}, gates()),
    ?assertEqual({wait, 400}, autonomic_loop_gates:decision(R)),
    ?assertEqual(pass, autonomic_loop_gates:decision(autonomic_loop_gates:evaluate((ctx())#{last_end => 9000}, gates()))).

unknown_headroom_passes_test() ->
    ?assertEqual(pass, autonomic_loop_gates:decision(autonomic_loop_gates:evaluate((ctx())#{headroom => undefined}, gates()))).

%%% Recovery

rec(Seq, State, Id, Extra) ->
    {Seq, <<"loop.operation.", (atom_to_binary(State))/binary>>, maps:merge(#{op => Id, state => State, at => Seq}, Extra)}.

recovery_decisions_test() ->
    R = [rec(1, init, <<"a">>, #{target => t1, started_at => 1}),
         rec(2, init, <<"b">>, #{target => t2, started_at => 2}),
         rec(3, init, <<"c">>, #{target => t3, started_at => 3}),
         rec(4, init, <<"d">>, #{target => t4, started_at => 4}),
         rec(5, locked, <<"a">>, #{}),
         rec(6, locked, <<"b">>, #{}), rec(7, safety_check, <<"b">>, #{}), rec(8, in_progress, <<"b">>, #{}),
         {9, <<"loop.action">>, #{op => <<"b">>, strategy => throttle, receipt => <<"r1">>}},
         rec(10, verifying, <<"b">>, #{}),
         rec(11, paused_for_human_review, <<"c">>, #{}),
         rec(12, locked, <<"d">>, #{}), rec(13, safety_check, <<"d">>, #{}), rec(14, in_progress, <<"d">>, #{}),
         rec(15, verifying, <<"d">>, #{}), rec(16, completed, <<"d">>, #{})],
    ?assertMatch([{abandon, #{op := <<"a">>, state := locked, target := t1, actions := []}},
                  {verify, #{op := <<"b">>, state := verifying, target := t2, actions := [#{receipt := <<"r1">>}]}},
                  {review, #{op := <<"c">>, state := paused_for_human_review}}],
                 autonomic_loop_recovery:unfinished(R)),
    ?assertEqual([], autonomic_loop_recovery:unfinished([])).

%%% Strategies and specs

strategies_test() ->
    Svc = #{target => {service, ?N, wl}},
    ?assertEqual([supervisor_restart], autonomic_loop_act:strategies(Svc, {[supervisor_restart, escalate], escalate})),
    ?assertEqual([escalate], autonomic_loop_act:strategies(Svc, {[backend_failover], undefined})),
    Tenant = #{target => {tenant, ?N, <<"t">>}},
    ?assertEqual([throttle, load_shedding], autonomic_loop_act:strategies(Tenant, {[throttle, load_shedding, escalate], undefined})),
    Node = #{target => {node, ?N}},
    ?assertEqual([quorum_reconfiguration], autonomic_loop_act:strategies(Node, {[quorum_reconfiguration, backend_failover, escalate], escalate})).

blast_radius_counts_running_dependents_test() ->
    Services = [{?N, wl, #{depends_on => []}, down}, {?N, api, #{depends_on => [wl]}, up},
                {?N, web, #{depends_on => [api]}, up}, {'b@h', api, #{depends_on => [wl]}, up}],
    ?assertEqual(2, autonomic_loop_act:disrupted(#{strategy => supervisor_restart, target => {service, ?N, wl}}, Services)),
    ?assertEqual(0, autonomic_loop_act:disrupted(#{strategy => throttle, target => {tenant, ?N, <<"t">>}}, Services)).

service_spec_test() ->
    ?assertMatch({ok, #{supervisor := s, depends_on := [], checks := [], tenants := false, children := all}},
                 autonomic_loop_services:validate(#{supervisor => s})),
    ?assertEqual({error, {invalid_spec, x}}, autonomic_loop_services:validate(x)),
    ?assertEqual({error, {unknown_keys, [colour]}}, autonomic_loop_services:validate(#{supervisor => s, colour => red})),
    ?assertEqual({error, {invalid, depends_on, [<<"x">>]}}, autonomic_loop_services:validate(#{supervisor => s, depends_on => [<<"x">>]})),
    ?assertEqual({error, {invalid_service_name, "x"}}, autonomic_loop_services:register_service("x", #{supervisor => s})).

memory_pressure_goes_to_the_heaviest_service_test() ->
    Services = [{?N, wl, wl_spec(), up}, {?N, api, #{supervisor => api_sup}, up}, {'b@h', big, #{supervisor => b}, up}],
    Input = (input([ev(resource_exhausted, #{resource => memory, value => 95, threshold => 90})], Services))#{
              memory => #{{?N, wl} => 1000, {?N, api} => 5000, {'b@h', big} => 99999}},
    ?assertMatch([#{failure_type := memory_leak, target := {service, ?N, api}, spec := #{supervisor := api_sup}}],
                 autonomic_loop_analyze:incidents(Input)),
    %% No service on the node: the node's resource.
    ?assertMatch([#{failure_type := memory_leak, target := {resource, ?N, memory}}],
                 autonomic_loop_analyze:incidents(input([ev(resource_exhausted, #{resource => memory})], []))),
    ?assertEqual([supervisor_restart],
                 autonomic_loop_act:strategies(#{target => {service, ?N, api}}, {[supervisor_restart, escalate], undefined})).

partition_is_a_cluster_incident_test() ->
    [I] = autonomic_loop_analyze:incidents(input([ev(network_partition, #{groups => [[?N], ['b@h']], majority_unreachable => false})], [])),
    ?assertMatch(#{failure_type := network_partition, target := {cluster}, root_cause := network_issue}, I),
    ?assertEqual([quorum_reconfiguration],
                 autonomic_loop_act:strategies(I, {[quorum_reconfiguration, pause, escalate], undefined})).

backend_check_down_in_the_snapshot_test() ->
    %% The event was lost (no coordinator when it was published): the check's state still says.
    Input = (input([], [{?N, wl, wl_spec(), up}]))#{checks => #{{?N, db_check} => down, {'b@h', db_check} => up}},
    ?assertMatch([#{failure_type := backend_down, target := {backend, ?N, db}, service := wl}],
                 autonomic_loop_analyze:incidents(Input)),
    ?assertEqual([], autonomic_loop_analyze:incidents((input([], [{?N, wl, wl_spec(), up}]))#{checks => #{{?N, db_check} => up}})).
