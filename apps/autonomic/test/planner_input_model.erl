%%% @doc Planner inputs for tests and benchmarks: synthetic topologies of any size (a random
%%% DAG of services over nodes, deterministic for a seed) and the analyses that go with them;
%%% random inputs exercising every optional key; and corruptions of them, one per kind of
%%% `invalid_input' error.
-module(planner_input_model).

-export([topology/3, input/3, small/0, big/0, random/3, corrupt/2, ncorruptions/0]).

%% @doc `NNodes' nodes and `NServices' services; each service depends on up to three services
%% before it, belongs to a supervisor on its node (groups of about four), and has a small load.
-spec topology(pos_integer(), non_neg_integer(), integer()) -> map().
topology(NNodes, NServices, Seed) ->
    S0 = rand:seed_s(exsss, Seed),
    Names = list_to_tuple([node_name(I) || I <- lists:seq(0, NNodes - 1)]),
    {Nodes, S1} = lists:mapfoldl(fun(I, S) ->
                                     {H, S2} = rand:uniform_s(S),
                                     {#{name => element(I + 1, Names), headroom => 0.2 + H * 0.6}, S2}
                                 end, S0, lists:seq(0, NNodes - 1)),
    {Services, _} = lists:mapfoldl(
        fun(I, S) ->
            {K, Sa} = rand:uniform_s(4, S),
            {Deps, Sb} = case I of
                0 -> {[], Sa};
                _ -> lists:mapfoldl(fun(_, Sx) ->
                                        {D, Sy} = rand:uniform_s(I, Sx),
                                        {service_name(D - 1), Sy}
                                    end, Sa, lists:seq(1, K - 1))
            end,
            {L, Sc} = rand:uniform_s(Sb),
            Node = element(I rem NNodes + 1, Names),
            Sup = list_to_binary(["sup", integer_to_list(I div (NNodes * 4))]),
            {#{name => service_name(I), node => Node, depends_on => Deps, supervisor => Sup,
               load => L * 0.02}, Sc}
        end, S1, lists:seq(0, NServices - 1)),
    #{nodes => Nodes, services => Services}.

%% @doc A `node_down' analysis of the fourth node (or the last, in smaller topologies).
-spec input(pos_integer(), non_neg_integer(), integer()) -> map().
input(NNodes, NServices, Seed) ->
    #{analysis => #{failure_type => node_down, root_cause => host_lost, confidence => 0.8,
                    affected_nodes => [node_name(min(3, NNodes - 1))]},
      topology => topology(NNodes, NServices, Seed),
      effectiveness => #{},
      policy => #{blast_radius_limit => NServices}}.

%% @doc The benchmark's small topology: 5 nodes, 20 services.
-spec small() -> map().
small() -> input(5, 20, 7).

%% @doc The benchmark's big topology: 500 nodes, 5,000 services.
-spec big() -> map().
big() -> input(500, 5000, 7).

node_name(I) ->
    list_to_atom("node" ++ integer_to_list(I) ++ "@host").

service_name(I) ->
    list_to_binary(["svc", integer_to_list(I)]).

pick(L, S) ->
    {I, S1} = rand:uniform_s(length(L), S),
    {lists:nth(I, L), S1}.

coin(P, S) ->
    {X, S1} = rand:uniform_s(S),
    {X < P, S1}.

%% @doc A random valid input: `NN' nodes, `NS' services (a DAG), an analysis, effectiveness
%% figures and a policy, every optional key sometimes present, decided by `rand' from `Seed'.
-spec random(integer(), pos_integer(), non_neg_integer()) -> map().
random(Seed, NN, NS) ->
    S0 = rand:seed_s(exsss, Seed),
    NodeNames = [list_to_atom("n" ++ integer_to_list(I) ++ "@h") || I <- lists:seq(1, NN)],
    SvcName = fun(I) when I rem 3 =:= 0 -> list_to_binary("s" ++ integer_to_list(I));
                 (I) -> list_to_atom("s" ++ integer_to_list(I))
              end,
    {Nodes, S1} = lists:mapfoldl(
        fun(N, S) ->
            {H, Sa} = pick([none, 0, 1, 0.25, 0.5, 0.75, float], S),
            {Hf, Sb} = rand:uniform_s(Sa),
            {Up, Sc} = pick([none, true, true, true, false], Sb),
            M0 = #{name => N},
            M1 = case H of none -> M0; float -> M0#{headroom => Hf}; _ -> M0#{headroom => H} end,
            M2 = case Up of none -> M1; _ -> M1#{up => Up} end,
            {M2, Sc}
        end, S0, NodeNames),
    {Services, S2} = lists:mapfoldl(
        fun(I, S) ->
            {Node, Sa} = pick(NodeNames, S),
            {NDeps, Sb} = rand:uniform_s(4, Sa),
            {Deps, Sc} = case I of
                0 -> {[], Sb};
                _ -> lists:mapfoldl(fun(_, Sx) -> {D, Sy} = rand:uniform_s(I, Sx), {SvcName(D - 1), Sy} end,
                                    Sb, lists:seq(1, NDeps - 1))
            end,
            {Sup, Sd} = pick([none, sup_a, sup_a, <<"sup_b">>], Sc),
            {Load, Se} = pick([none, 0, 0.0625, 0.125, float], Sd),
            {Lf, Sf} = rand:uniform_s(Se),
            M0 = #{name => SvcName(I), node => Node, depends_on => Deps},
            M1 = case Sup of none -> M0; _ -> M0#{supervisor => Sup} end,
            M2 = case Load of none -> M1; float -> M1#{load => Lf * 0.2}; _ -> M1#{load => Load} end,
            {M2, Sf}
        end, S1, lists:seq(0, NS - 1)),
    SvcNames = [SvcName(I) || I <- lists:seq(0, NS - 1)],
    {FT, S3} = pick([process_crash, node_down, overload, backend_down, network_partition,
                     resource_exhausted, node_suspected, memory_leak, service_crash,
                     <<"overload">>, cosmic_ray], S2),
    {Conf, S4} = pick([0, 1, 0.5, 0.9, 0.1, 0.33], S3),
    {NAffN, S4a} = rand:uniform_s(3, S4),
    {AffN, S5a} = lists:mapfoldl(fun(_, S) -> pick(NodeNames, S) end, S4a, lists:seq(1, NAffN - 1)),
    {NAffS, S5} = rand:uniform_s(4, S5a),
    {AffS, S6} = case SvcNames of
        [] -> {[], S5};
        _ -> lists:mapfoldl(fun(_, S) -> pick(SvcNames, S) end, S5, lists:seq(1, NAffS - 1))
    end,
    Analysis = #{failure_type => FT, confidence => Conf, affected_nodes => AffN,
                 affected_services => AffS, symptoms => [<<"extra keys are ignored">>]},
    Strategies = [backend_failover, escalate, graceful_degradation, load_shedding, pause,
                  quorum_reconfiguration, supervisor_restart, throttle],
    {Eff, S7} = lists:foldl(
        fun(St, {Acc, S}) ->
            {Keep, Sa} = coin(0.5, S),
            {Ok, Sb} = rand:uniform_s(60, Sa),
            {Ko, Sc} = rand:uniform_s(60, Sb),
            {Mean, Sd} = pick([none, undefined, 800, 1234.5, 20000.0], Sc),
            E0 = #{successes => Ok - 1, failures => Ko - 1, rate => 0.5},
            E = case Mean of none -> E0; _ -> E0#{mean_recovery_ms => Mean} end,
            {case Keep of true -> Acc#{St => E}; false -> Acc end, Sd}
        end, {#{}, S6}, Strategies),
    {Policy, _} = lists:foldl(
        fun({K, Vs}, {Acc, S}) ->
            {Keep, Sa} = coin(0.4, S),
            {V, Sb} = pick(Vs, Sa),
            {case Keep of true -> Acc#{K => V}; false -> Acc end, Sb}
        end, {#{}, S7},
        [{allowed, [#{FT => Strategies}, #{FT => lists:reverse(Strategies)},
                    #{FT => [throttle, throttle, escalate]}, #{default => [pause]}, #{FT => []}]},
         {slo_budget_ms, [1000, 60000.0, 300000]},
         {blast_radius_limit, [0, 1, 3, 10, 1000]},
         {quorum_size, [1, 2, 3, 5]},
         {default_recovery_ms, [#{throttle => 10}, #{escalate => 1.0e6, pause => 0}]},
         {step_ms, [0, 50, 250.5]},
         {shed_percent, [1, 10, 100]},
         {throttle_percent, [5, 90]},
         {degrade_impact, [0, 0.5, 1]}]),
    %% An empty effectiveness or policy is sometimes left out altogether.
    In = #{analysis => Analysis, topology => #{nodes => Nodes, services => Services}},
    maps:merge(In, maps:filter(fun(_, V) -> V =/= #{} orelse Seed rem 2 =:= 0 end,
                               #{effectiveness => Eff, policy => Policy})).

%% @doc How many corruptions {@link corrupt/2} knows.
-spec ncorruptions() -> pos_integer().
ncorruptions() -> 26.

%% @doc The `K'th way of breaking a valid input (each gives an `invalid_input' error).
-spec corrupt(pos_integer(), map()) -> term().
corrupt(K, #{analysis := A, topology := #{nodes := Nodes, services := Services} = T} = In) ->
    P = maps:get(policy, In, #{}),
    SetA = fun(Key, V) -> In#{analysis := A#{Key => V}} end,
    SetP = fun(Key, V) -> In#{policy => P#{Key => V}} end,
    SetT = fun(Key, V) -> In#{topology := T#{Key => V}} end,
    [N1 | _] = Nodes,
    case K of
        1 -> SetA(confidence, 1.5);
        2 -> In#{analysis := not_a_map};
        3 -> maps:remove(topology, In);
        4 -> In#{zzz => 1, aaa => 2};
        5 -> SetP(blast_radius, 3);
        6 -> SetT(nodes, [N1#{headroom => -1} | tl(Nodes)]);
        7 -> SetT(nodes, [N1#{headroom => <<"x">>} | tl(Nodes)]);
        8 -> SetT(nodes, Nodes ++ [N1]);
        9 -> SetT(services, Services ++ [#{name => dangling, node => maps:get(name, N1), depends_on => [missing]}]);
        10 -> SetT(services, Services ++ [#{name => loop_a, node => maps:get(name, N1), depends_on => [loop_b]},
                                          #{name => loop_b, node => maps:get(name, N1), depends_on => [loop_c]},
                                          #{name => loop_c, node => maps:get(name, N1), depends_on => [loop_a]}]);
        11 -> SetA(affected_nodes, ['nowhere@h']);
        12 -> SetA(affected_services, [<<"ghost">>]);
        13 -> In#{effectiveness => #{bogus => #{successes => 1, failures => 1}}};
        14 -> In#{effectiveness => #{throttle => #{successes => -1, failures => 0}}};
        15 -> SetP(allowed, #{node_down => [reboot]});
        16 -> SetP(quorum_size, 0);
        17 -> SetP(shed_percent, 101);
        18 -> SetT(services, [#{name => imp, node => maps:get(name, N1), depends_on => [a | b]} | Services]);
        19 -> SetP(blast_radius_limit, 1 bsl 60);
        20 -> SetA(root_cause, {not_a, label});
        21 -> SetT(nodes, "abc");
        22 -> In#{effectiveness => #{<<"throttle">> => #{successes => 1, failures => 1}}};
        23 -> SetP(allowed, #{{a} => [pause]});
        24 -> SetA(failure_type, binary:copy(<<"x">>, 256));
        25 -> (SetA(confidence, -1))#{topology := T#{nodes => Nodes ++ [N1]}};
        26 -> SetT(services, Services ++ [#{name => dup, node => maps:get(name, N1)}, #{name => dup, node => maps:get(name, N1)}])
    end.
