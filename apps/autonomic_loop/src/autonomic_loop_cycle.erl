%%% @doc The first phases of a cycle, run in a process of their own so the coordinator keeps
%%% answering: Monitor (a snapshot of every node's services and the quorum), Analyze (rules and
%%% the knowledge base's evidence: {@link autonomic_loop_analyze}) and Plan (the planner's choice
%%% among the policy's strategies: {@link autonomic_loop_act:strategies/2}). The operations it
%%% plans are then run by the coordinator, each in its own process (Gate, Execute, Verify,
%%% Knowledge).
-module(autonomic_loop_cycle).

-export([run/2, snapshot/0]).

-define(LOG, #{domain => [autonomic, loop]}).

%% @doc Runs the first phases for cycle `Id' and sends the coordinator
%% `{cycle_planned, Id, Planned, Timings, Snapshot}'. `Input': `events' (since the last cycle),
%% `active' (`[{Target, FailureType}]' of the operations not finished: not planned again),
%% `healed' (`#{Target => SystemMs}': when a restart of it last completed; a service seen down
%% before then is not planned again), `policy'.
-spec run(pid(), map()) -> ok.
run(Coord, #{id := Id, events := Events, active := Active, policy := Policy} = Input) ->
    Healed = maps:get(healed, Input, #{}),
    T0 = now_ms(),
    Snapshot = snapshot(),
    T1 = now_ms(),
    Incidents0 = autonomic_loop_analyze:incidents(Snapshot#{events => Events, now => erlang:system_time(millisecond)}),
    %% A second incident on a target under an operation is planned only when its failure type
    %% differs (it then waits for the target's lock: one after the other).
    Incidents1 = [I || #{target := T, failure_type := F} = I <- Incidents0,
                       not lists:member({T, F}, Active), not self_inflicted(I, Healed)],
    Incidents = [autonomic_loop_analyze:confidence(I, similar(I)) || I <- Incidents1],
    T2 = now_ms(),
    Planned = [plan(I, Snapshot, Policy) || I <- Incidents],
    T3 = now_ms(),
    Coord ! {cycle_planned, Id, Planned, #{monitor => T1 - T0, analyze => T2 - T1, plan => T3 - T2}, Snapshot},
    ok.

%% A restart makes the old supervisor go down, which the registry reports: a service seen down
%% before the restart that healed it completed is not a new incident.
self_inflicted(#{target := T, symptoms := Symptoms, detected_at := At}, Healed) ->
    lists:member(<<"service_down">>, Symptoms) andalso At =< maps:get(T, Healed, At - 1).

similar(#{symptoms := Symptoms}) ->
    try autonomic_kb:similar(Symptoms, #{threshold => 0.5, limit => 20}) of
        L when is_list(L) -> L;
        _ -> []
    catch
        _:_ -> []
    end.

%% @doc Every node's services (`[{Node, Name, Spec, up | down}]'), their memory
%% (`#{{Node, Name} => Bytes}'), the state of every node's health checks
%% (`#{{Node, Check} => up | down | unknown}') and this node's quorum status.
-spec snapshot() -> #{services := list(), quorum := map(), memory := map(), checks := map()}.
snapshot() ->
    Nodes = [node() | nodes()],
    Timeout = application:get_env(autonomic_loop, rpc_timeout_ms, 5000),
    Results = erpc:multicall(Nodes, autonomic_loop_services, local, [], min(Timeout, 2000)),
    Services = lists:append([[{N, Name, Spec, Status} || {Name, Spec, Status} <- L]
                             || {N, {ok, L}} <- lists:zip(Nodes, Results), is_list(L)]),
    Quorum0 = try quorum_manager:get_quorum_status() catch _:_ -> #{} end,
    Quorum = Quorum0#{connected => nodes()},
    Memory = erpc:multicall(Nodes, autonomic_loop_services, memory, [], min(Timeout, 2000)),
    Checks = erpc:multicall(Nodes, mape_k_checks, status, [], min(Timeout, 2000)),
    #{services => Services, quorum => Quorum,
      checks => maps:from_list([{{N, C}, maps:get(state, St, unknown)} || {N, {ok, M}} <- lists:zip(Nodes, Checks), is_map(M),
                                                                         {C, St} <- maps:to_list(M), is_map(St)]),
      memory => maps:from_list([{{N, Name}, B} || {N, {ok, M}} <- lists:zip(Nodes, Memory), is_map(M),
                                                  {Name, B} <- maps:to_list(M)])}.

plan(#{failure_type := Type, confidence := C, target := Target} = I, #{services := Services}, Policy) ->
    Modes = maps:get(failure_modes, Policy),
    Mode = maps:get(Type, Modes, maps:get(default, Modes, #{})),
    Allowed = maps:get(recovery_strategies, Mode, [escalate]),
    Min = maps:get(min_confidence, maps:get(loop, Policy)),
    {PlannerPlan, Planned} = planner(I, Services),
    Strategies = case C < Min of
        %% Not sure enough to act alone: propose what acts on this kind of target to a human.
        true -> [autonomic_loop_act:generic_strategy(Target)];
        false -> autonomic_loop_act:strategies(I, {Allowed, Planned})
    end,
    Estimated = case PlannerPlan of
        #{estimated_ms := E} when Planned =:= hd(Strategies) -> E;
        _ -> maps:get(recovery_ms, Mode, 5000)
    end,
    Op = #{incident => I, target => Target, strategies => Strategies, strategy => hd(Strategies),
           estimated_ms => Estimated, plan => PlannerPlan},
    Op1 = case maps:find(service, I) of
        {ok, S} -> Op#{service => S, spec => maps:get(spec, I, #{}),
                       depends_on => maps:get(depends_on, maps:get(spec, I, #{}), [])};
        error -> Op
    end,
    Op1#{disrupted => autonomic_loop_act:disrupted(Op1, Services), services_total => length(Services)}.

%% The planner's plan for the incident (`undefined' when it has none): its strategy is used
%% first when the policy allows it on the target.
planner(#{failure_type := Type, confidence := C, target := Target} = I, Services) ->
    Nodes = lists:usort([node() | nodes()]),
    Label = fun(N, S) -> iolist_to_binary([atom_to_list(S), "@", atom_to_list(N)]) end,
    Topology = #{nodes => [#{name => N, headroom => 0.5} || N <- Nodes],
                 services => [#{name => Label(N, S), node => N, supervisor => maps:get(supervisor, Spec)}
                              || {N, S, Spec, _} <- Services, lists:member(N, Nodes)]},
    Analysis = #{failure_type => Type, confidence => C, root_cause => maps:get(root_cause, I),
                 affected_nodes => [N || {node, N} <- [Target], lists:member(N, Nodes)],
                 affected_services => case Target of
                                          {service, N, S} -> [Label(N, S) || lists:member(N, Nodes)];
                                          _ -> []
                                      end},
    try autonomic_planner:plan(Analysis, #{topology => Topology, timeout => 2000}) of
        {ok, #{strategy := Chosen} = P} -> {P, Chosen};
        {error, Why} ->
            logger:info("loop: no plan from the planner for ~p: ~p", [Type, Why], ?LOG),
            {undefined, undefined}
    catch
        Class:Why ->
            logger:warning("loop: planner failed: ~p:~p", [Class, Why], ?LOG),
            {undefined, undefined}
    end.

now_ms() -> erlang:monotonic_time(millisecond).
