%%% @doc Planner inputs for tests and benchmarks: synthetic topologies of any size (a random
%%% DAG of services over nodes, deterministic for a seed) and the analyses that go with them.
-module(planner_input_model).

-export([topology/3, input/3, small/0, big/0]).

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
