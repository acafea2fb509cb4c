%%% @doc The built-in planner on its own (pure: no C-node, no application): the same cases as
%%% the Rust planner's unit tests, and properties over random DAG topologies. That the two
%%% planners agree is checked in `autonomic_planner_SUITE'.
-module(autonomic_planner_builtin_tests).

-include_lib("proper/include/proper.hrl").
-include_lib("eunit/include/eunit.hrl").

%%% Fixtures

%% db <- cache <- api <- web on n1, all children of app_sup; n2 and n3 idle.
chain() ->
    Svc = fun(Name, Deps) -> #{name => Name, node => 'n1@h', depends_on => Deps, supervisor => app_sup, load => 0.125} end,
    #{nodes => [#{name => 'n1@h', headroom => 0.5}, #{name => 'n2@h', headroom => 0.25},
                #{name => 'n3@h', headroom => 0.375}],
      services => [Svc(web, [api]), Svc(api, [cache, db]), Svc(cache, [db]), Svc(db, [])]}.

input(FT, Topology, Analysis) ->
    #{analysis => maps:merge(#{failure_type => FT, confidence => 0.9}, Analysis), topology => Topology}.

allow(#{analysis := #{failure_type := FT}} = In, Strategies) ->
    Policy = maps:get(policy, In, #{}),
    In#{policy => Policy#{allowed => #{FT => Strategies}}}.

with_policy(In, Key, Value) ->
    Policy = maps:get(policy, In, #{}),
    In#{policy => Policy#{Key => Value}}.

plan(In) ->
    {ok, P} = autonomic_planner_builtin:plan(In),
    P.

targets(#{steps := Steps}) ->
    [maps:get(service, S, maps:get(supervisor, S, maps:get(node, S, undefined))) || S <- Steps].

candidate(In, Scope) ->
    {ok, Ranked} = autonomic_planner_builtin:rank(In),
    [Plan] = [P || {_, Sc, {ok, P}} <- Ranked, Sc =:= Scope],
    Plan.

%%% Dependency order

restarts_dependencies_before_dependents_test() ->
    In = allow(input(process_crash, chain(), #{affected_services => [web, db, api]}), [supervisor_restart]),
    ?assertEqual([db, api, web], targets(candidate(In, quick))),
    %% The full restart adds the sibling cache between db and api; the cold one restarts app_sup.
    ?assertEqual([db, cache, api, web], targets(candidate(In, full))),
    ?assertEqual([app_sup], targets(candidate(In, cold))),
    %% Without supervisors, only the quick restart; a restart cannot be rolled back.
    #{services := Services} = Topo = chain(),
    Bare = In#{topology := Topo#{services := [maps:remove(supervisor, S) || S <- Services]}},
    ?assertMatch({ok, [_]}, autonomic_planner_builtin:rank(Bare)),
    ?assertMatch(#{steps := [_, _, _], rollback := []}, plan(Bare)).

failover_moves_dependencies_first_to_the_most_headroom_test() ->
    In = allow(input(node_down, chain(), #{affected_nodes => ['n1@h']}), [backend_failover]),
    P = plan(In),
    ?assertEqual([db, cache, api, web], targets(P)),
    %% n3 (0.375) takes db; n2 and n3 tie at 0.25: the smaller name, n2, takes cache; ...
    ?assertEqual(['n3@h', 'n2@h', 'n3@h', 'n2@h'], [To || #{to := To} <- maps:get(steps, P)]),
    ?assertMatch([#{action := failback, service := web, from := 'n2@h', to := 'n1@h'} | _], maps:get(rollback, P)),
    %% Without room on n2, n3 cannot take the fourth service.
    #{nodes := [N1, N2, N3]} = Topo = chain(),
    Full = In#{topology := Topo#{nodes := [N1, N2#{headroom => 0}, N3]}},
    #{strategy := escalate, steps := [#{rejected := [#{reason := no_capacity}]}]} = plan(Full).

%%% Quorum

quorum_reconfiguration_never_breaks_the_quorum_test() ->
    Five = #{nodes => [#{name => N, headroom => 0.5} || N <- ['n1@h', 'n2@h', 'n3@h', 'n4@h', 'n5@h']]},
    In = allow(input(node_down, Five, #{affected_nodes => ['n4@h', 'n2@h']}), [quorum_reconfiguration]),
    ?assertMatch(#{strategy := quorum_reconfiguration,
                   steps := [#{action := remove_node, node := 'n2@h'}, #{action := remove_node, node := 'n4@h'}],
                   rollback := [#{action := add_node, node := 'n4@h'}, #{action := add_node, node := 'n2@h'}]},
                 plan(In)),
    %% Three of five would leave two: the default quorum is three.
    Three = In#{analysis := (maps:get(analysis, In))#{affected_nodes => ['n1@h', 'n2@h', 'n3@h']}},
    ?assertMatch(#{strategy := escalate,
                   steps := [#{reason := no_feasible_plan,
                               rejected := [#{strategy := quorum_reconfiguration, reason := {quorum, 2, 3}}]}]},
                 plan(Three)),
    ?assertMatch(#{strategy := quorum_reconfiguration}, plan(with_policy(Three, quorum_size, 2))).

%%% Blast radius

blast_radius_limit_escalates_test() ->
    In = allow(input(process_crash, chain(), #{affected_services => [db]}), [supervisor_restart]),
    %% db is needed by cache, api and web: a restart of db disrupts four services.
    ?assertMatch(#{strategy := supervisor_restart}, plan(with_policy(In, blast_radius_limit, 4))),
    #{strategy := escalate, steps := [#{rejected := Rejected}], rollback := []} =
        plan(with_policy(In, blast_radius_limit, 3)),
    ?assertEqual([quick, full, cold], [S || #{scope := S} <- Rejected]),
    ?assert(lists:all(fun(#{reason := R}) -> R =:= {blast_radius, 4, 3} end, Rejected)).

%%% Cost

cost_follows_the_formulas_test() ->
    In0 = allow(input(overload, chain(), #{affected_services => [api], confidence => 0.8}), [throttle]),
    In = In0#{effectiveness => #{throttle => #{successes => 7, failures => 1, mean_recovery_ms => 1234.4}}},
    #{estimated_ms := Ms, confidence := C, cost := #{downtime := D, resource := R, risk := K, total := T},
      steps := Steps, rollback := Rollback} = plan(In),
    Success = (7 + 1) / (7 + 1 + 2) * 0.8,
    ?assertEqual(1234, Ms),
    ?assertEqual(Success, C),
    ?assertEqual(1234 * 0.5 / 300000, D),
    ?assertEqual(0.0, R),
    %% api and web are disrupted, of four services.
    ?assertEqual((1 - Success) + 2 / 4, K),
    ?assertEqual(D + R + K, T),
    ?assertEqual([#{action => throttle, service => api, percent => 50}], Steps),
    ?assertEqual([#{action => unthrottle, service => api}], Rollback).

knowledge_base_history_changes_the_choice_test() ->
    In = input(node_down, chain(), #{affected_nodes => ['n1@h']}),
    ?assertMatch(#{strategy := backend_failover}, plan(In)),
    Eff = #{backend_failover => #{successes => 1, failures => 40, mean_recovery_ms => undefined},
            quorum_reconfiguration => #{successes => 50, failures => 0, mean_recovery_ms => 800,
                                        rate => 1.0, p95_recovery_ms => 900.0}},
    ?assertMatch(#{strategy := quorum_reconfiguration, estimated_ms := 800}, plan(In#{effectiveness => Eff})).

unknown_failure_types_use_the_default_entry_test() ->
    In = input(cosmic_ray, chain(), #{affected_services => [web]}),
    {ok, Ranked} = autonomic_planner_builtin:rank(In),
    ?assertEqual([{supervisor_restart, quick}, {supervisor_restart, full}, {supervisor_restart, cold},
                  {throttle, none}, {escalate, none}], [{S, Sc} || {S, Sc, _} <- Ranked]),
    Paused = with_policy(In, allowed, #{default => [pause]}),
    ?assertMatch(#{strategy := pause, rollback := [#{action := resume, service := web}]}, plan(Paused)).

nothing_to_act_on_escalates_test() ->
    #{strategy := escalate, steps := [#{reason := no_feasible_plan, rejected := Rejected}]} =
        plan(input(overload, chain(), #{})),
    ?assert(lists:all(fun(#{reason := R}) -> R =:= nothing_to_act_on end, Rejected)),
    ?assertMatch(#{strategy := escalate}, plan(allow(input(overload, chain(), #{}), []))).

%%% Validation

errors_are_named_test_() ->
    Base = input(process_crash, chain(), #{affected_services => [web]}),
    #{topology := #{nodes := Nodes, services := Services} = T} = Base,
    Err = fun(In) -> {error, {invalid_input, D}} = autonomic_planner_builtin:plan(In), D end,
    A = fun(K, V) -> Base#{analysis := (maps:get(analysis, Base))#{K => V}} end,
    [?_assertEqual({not_a_map, input}, Err(nope)),
     ?_assertEqual({unknown_key, input, beta}, Err(Base#{zeta => 1, beta => 2})),
     ?_assertEqual({bad_key, input}, Err(Base#{7 => 1})),
     ?_assertEqual({missing_key, input, topology}, Err(maps:remove(topology, Base))),
     ?_assertEqual({bad_value, analysis, confidence}, Err(A(confidence, 1.5))),
     ?_assertEqual({bad_value, analysis, confidence}, Err(A(confidence, "high"))),
     ?_assertEqual({bad_value, analysis, failure_type}, Err(A(failure_type, <<>>))),
     ?_assertEqual({bad_value, analysis, affected_services}, Err(A(affected_services, [web | db]))),
     ?_assertEqual({bad_value, node, headroom}, Err(Base#{topology := T#{nodes := [(hd(Nodes))#{headroom => -0.1} | tl(Nodes)]}})),
     ?_assertEqual({duplicate_node, 'n2@h'}, Err(Base#{topology := T#{nodes := Nodes ++ [#{name => 'n2@h'}]}})),
     ?_assertEqual({duplicate_service, db}, Err(Base#{topology := T#{services := Services ++ [#{name => db, node => 'n2@h'}]}})),
     ?_assertEqual({unknown_node, 'n9@h'}, Err(Base#{topology := T#{services := Services ++ [#{name => x, node => 'n9@h'}]}})),
     ?_assertEqual({unknown_dependency, x, nope},
                   Err(Base#{topology := T#{services := Services ++ [#{name => x, node => 'n1@h', depends_on => [nope]}]}})),
     ?_assertEqual({unknown_service, ghost}, Err(A(affected_services, [web, ghost]))),
     ?_assertEqual({too_many, depends_on, 1000},
                   Err(Base#{topology := T#{services := [#{name => x, node => 'n1@h', depends_on => lists:duplicate(1001, db)} | Services]}})),
     ?_assertEqual({unknown_strategy, reboot}, Err(with_policy(Base, allowed, #{x => [pause, reboot]}))),
     ?_assertEqual({unknown_key, policy, slo_budget}, Err(with_policy(Base, slo_budget, 1))),
     ?_assertEqual({bad_value, policy, quorum_size}, Err(with_policy(Base, quorum_size, 1 bsl 53 + 1))),
     ?_assertEqual({bad_value, default_recovery_ms, throttle}, Err(with_policy(Base, default_recovery_ms, #{throttle => -5}))),
     ?_assertEqual({missing_key, {effectiveness, throttle}, failures}, Err(Base#{effectiveness => #{throttle => #{successes => 1}}})),
     ?_assertEqual({bad_value, {effectiveness, pause}, successes}, Err(Base#{effectiveness => #{pause => #{successes => -1, failures => 0}}})),
     %% db -> y -> x -> db, a_z hanging off the cycle: the smallest name on the cycle.
     ?_assertEqual({dependency_cycle, db},
                   Err(Base#{topology := T#{services := [S#{depends_on := case maps:get(name, S) of db -> [y]; _ -> maps:get(depends_on, S) end} || S <- Services]
                                                          ++ [#{name => y, node => 'n1@h', depends_on => [x]},
                                                              #{name => x, node => 'n1@h', depends_on => [db]},
                                                              #{name => a_z, node => 'n1@h', depends_on => [x]}]}}))].

every_corruption_is_an_invalid_input_test() ->
    Valid = planner_input_model:random(1, 5, 12),
    ?assertMatch({ok, _}, autonomic_planner_builtin:plan(Valid)),
    [?assertMatch({error, {invalid_input, _}}, autonomic_planner_builtin:plan(planner_input_model:corrupt(K, Valid)))
     || K <- lists:seq(1, planner_input_model:ncorruptions())].

%%% Properties over random DAGs

input_gen() ->
    ?LET({Seed, NN, NS}, {integer(), range(1, 10), range(0, 40)}, planner_input_model:random(Seed, NN, NS)).

shuffle(L, S) ->
    {Keyed, S1} = lists:mapfoldl(fun(X, Sx) -> {R, Sy} = rand:uniform_s(Sx), {{R, X}, Sy} end, S, L),
    {[X || {_, X} <- lists:sort(Keyed)], S1}.

%% The same input with every list shuffled.
shuffled(#{analysis := A, topology := #{nodes := Nodes, services := Services}} = In, Seed) ->
    S0 = rand:seed_s(exsss, Seed),
    {N1, S1} = shuffle(Nodes, S0),
    {Sv, S2} = shuffle(Services, S1),
    {Sv1, S3} = lists:mapfoldl(fun(#{depends_on := D} = S, Sx) -> {D1, Sy} = shuffle(D, Sx), {S#{depends_on := D1}, Sy} end, S2, Sv),
    {AN, S4} = shuffle(maps:get(affected_nodes, A), S3),
    {AS, _} = shuffle(maps:get(affected_services, A), S4),
    In#{analysis := A#{affected_nodes := AN, affected_services := AS},
        topology := #{nodes => N1, services => Sv1}}.

prop_deterministic_whatever_the_input_order() ->
    ?FORALL({In, Seed}, {input_gen(), integer()},
            autonomic_planner_builtin:plan(In) =:= autonomic_planner_builtin:plan(shuffled(In, Seed))).

depends_on(Topology, From, On) ->
    Deps = maps:from_list([{N, D} || #{name := N, depends_on := D} <- maps:get(services, Topology)]),
    reach(maps:get(From, Deps), Deps, On, #{}).

reach([], _Deps, _On, _Seen) -> false;
reach([On | _], _Deps, On, _Seen) -> true;
reach([D | Rest], Deps, On, Seen) ->
    case Seen of
        #{D := _} -> reach(Rest, Deps, On, Seen);
        _ -> reach(maps:get(D, Deps) ++ Rest, Deps, On, Seen#{D => true})
    end.

prop_steps_respect_dependency_order() ->
    ?FORALL(#{topology := T} = In, input_gen(),
            begin
                {ok, Ranked} = autonomic_planner_builtin:rank(In),
                lists:all(fun({_, _, {ok, #{steps := Steps}}}) ->
                                  Touched = [S || #{action := Ac, service := S} <- Steps,
                                                  Ac =:= restart_child orelse Ac =:= failover],
                                  ordered(Touched, T);
                             (_) -> true
                          end, Ranked)
            end).

%% No service comes after one of its dependencies' dependents... i.e. no later step acts on a
%% dependency of an earlier one.
ordered([], _T) -> true;
ordered([X | Rest], T) -> not lists:any(fun(Y) -> depends_on(T, X, Y) end, Rest) andalso ordered(Rest, T).

prop_no_plan_breaks_the_quorum() ->
    ?FORALL(#{topology := #{nodes := Nodes}} = In, input_gen(),
            begin
                Policy = maps:get(policy, In, #{}),
                #{steps := Steps} = plan(In),
                Removed = [N || #{action := remove_node, node := N} <- Steps],
                Left = length([x || #{name := N} = Node <- Nodes, maps:get(up, Node, true),
                                    not lists:member(N, Removed)]),
                Removed =:= [] orelse Left >= maps:get(quorum_size, Policy, length(Nodes) div 2 + 1)
            end).

prop_rollback_undoes_every_reversible_step() ->
    ?FORALL(In, input_gen(),
            begin
                {ok, Ranked} = autonomic_planner_builtin:rank(In),
                Undo = #{remove_node => add_node, failover => failback, shed => stop_shedding,
                         throttle => unthrottle, degrade => restore, pause => resume},
                lists:all(fun({_, _, {ok, #{steps := Steps, rollback := Rollback}}}) ->
                                  Want = [maps:get(A, Undo) || #{action := A} <- lists:reverse(Steps), maps:is_key(A, Undo)],
                                  Want =:= [A || #{action := A} <- Rollback];
                             (_) -> true
                          end, Ranked)
            end).

prop_the_plan_is_the_cheapest_eligible_candidate() ->
    ?FORALL(In, input_gen(),
            begin
                #{cost := #{total := T, downtime := D, resource := R, risk := K}, confidence := C} = Plan = plan(In),
                {ok, Ranked} = autonomic_planner_builtin:rank(In),
                Totals = [Tq || {_, _, {ok, #{cost := #{total := Tq}}}} <- Ranked],
                lists:all(fun(Tq) -> T =< Tq end, Totals)
                    andalso T =:= D + R + K andalso C >= 0.0 andalso C =< 1.0
                    andalso (Totals =/= [] orelse maps:get(strategy, Plan) =:= escalate)
            end).

properties_test_() ->
    Opts = [{numtests, 300}, {to_file, user}],
    {timeout, 120,
     [?_assert(proper:quickcheck(prop_deterministic_whatever_the_input_order(), Opts)),
      ?_assert(proper:quickcheck(prop_steps_respect_dependency_order(), Opts)),
      ?_assert(proper:quickcheck(prop_no_plan_breaks_the_quorum(), Opts)),
      ?_assert(proper:quickcheck(prop_rollback_undoes_every_reversible_step(), Opts)),
      ?_assert(proper:quickcheck(prop_the_plan_is_the_cheapest_eligible_candidate(), Opts))]}.

big_topology_plans_test_() ->
    {timeout, 60, ?_assertMatch({ok, #{strategy := backend_failover}},
                                autonomic_planner_builtin:plan(planner_input_model:big()))}.
