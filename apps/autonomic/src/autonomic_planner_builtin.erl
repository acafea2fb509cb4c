%%% @doc The built-in recovery planner: the same model as the planner C-node
%%% (`autonomic_core::planner' in Rust), in pure Erlang, used when the C-node is down, slow or
%%% fails. It reads the same input, reports the same errors and returns the same plan, bit for
%%% bit, with `planner => builtin': every float is computed with the same operations in the same
%%% order (sums in topological or name order, no transcendental functions), every tie is broken
%%% by names in Erlang's term order, which the Rust side reproduces. A PropEr property checks
%%% this against the C-node over random inputs (`autonomic_planner_SUITE').
%%%
%%% The model (targets, candidates, eligibility, cost) is documented in README.md ("Planner")
%%% and in `native/autonomic_core/src/planner/mod.rs'. In short:
%%% ```
%%% estimated_ms = round(base * factor + step_ms * (steps - 1))
%%% downtime     = estimated_ms * impact / slo_budget_ms
%%% resource     = extra_load / running_nodes
%%% risk         = (1 - p * coverage) + blast_radius / services
%%% total        = downtime + resource + risk,    p = (successes + 1) / (successes + failures + 2)
%%% '''
%%% Pure: no processes, no ETS, no clock.
-module(autonomic_planner_builtin).

-export([plan/1, rank/1, default_allowed/0, default_recovery_ms/0]).

-export_type([input/0, plan/0, step/0, error_reason/0]).

-type label() :: atom() | binary().
-type strategy() :: backend_failover | escalate | graceful_degradation | load_shedding | pause
                  | quorum_reconfiguration | supervisor_restart | throttle.
-type input() :: #{analysis := map(), topology := map(), effectiveness => map(), policy => map()}.
-type step() :: #{action := atom(), _ => _}.
-type plan() :: #{strategy := strategy(), steps := [step()], rollback := [step()],
                  estimated_ms := non_neg_integer(),
                  cost := #{downtime := float(), resource := float(), risk := float(), total := float()},
                  confidence := float(), planner := builtin | cnode}.
-type error_reason() :: {invalid_input, term()}.

-define(MAX_NODES, 10000).
-define(MAX_SERVICES, 100000).
-define(MAX_DEPENDS_ON, 1000).
-define(MAX_DEPENDENCIES, 1000000).
-define(MAX_ALLOWED, 1000).
-define(MAX_LABEL_BYTES, 255).
-define(MAX_INTEGER, 9007199254740992). % 2^53
-define(MAX_RECOVERY_MS, 1.0e12).
-define(MAX_SLO_BUDGET_MS, 1.0e15).
-define(MAX_STEP_MS, 1.0e9).
-define(STRATEGIES, [backend_failover, escalate, graceful_degradation, load_shedding, pause,
                     quorum_reconfiguration, supervisor_restart, throttle]).
-define(POLICY_KEYS, [allowed, blast_radius_limit, default_recovery_ms, degrade_impact, quorum_size,
                      shed_percent, slo_budget_ms, step_ms, throttle_percent]).

%%% API

%% @doc The cheapest eligible plan, or an `escalate' plan when none is eligible.
-spec plan(term()) -> {ok, plan()} | {error, error_reason()}.
plan(Input) ->
    try
        P = problem(decode(Input)),
        Candidates = candidates(P),
        {ok, (best(Candidates, P))#{planner => builtin}}
    catch
        throw:{invalid, Detail} -> {error, {invalid_input, Detail}}
    end.

%% @doc Every candidate the policy allows, evaluated, in the policy's order of preference:
%% `{Strategy, Scope, {ok, Plan} | {rejected, Reason}}' (`Scope' is `quick', `full' or `cold'
%% for `supervisor_restart', else `none'). Plans here carry no `planner' key.
-spec rank(term()) -> {ok, [{strategy(), atom(), {ok, map()} | {rejected, term()}}]} | {error, error_reason()}.
rank(Input) ->
    try
        {ok, candidates(problem(decode(Input)))}
    catch
        throw:{invalid, Detail} -> {error, {invalid_input, Detail}}
    end.

%% @doc Allowed strategies per failure type when the policy does not say (the key `default'
%% applies to failure types not listed).
-spec default_allowed() -> #{label() => [strategy()]}.
default_allowed() ->
    #{backend_down => [backend_failover, graceful_degradation, escalate],
      default => [supervisor_restart, throttle, escalate],
      memory_leak => [supervisor_restart, escalate],
      network_partition => [quorum_reconfiguration, pause, escalate],
      node_down => [quorum_reconfiguration, backend_failover, escalate],
      node_suspected => [backend_failover, escalate],
      overload => [throttle, load_shedding, graceful_degradation, escalate],
      process_crash => [supervisor_restart, escalate],
      resource_exhausted => [supervisor_restart, load_shedding, throttle, escalate],
      service_crash => [supervisor_restart, backend_failover, escalate]}.

%% @doc Recovery time per strategy (ms) when the knowledge base has none.
-spec default_recovery_ms() -> #{strategy() => float()}.
default_recovery_ms() ->
    #{backend_failover => 5000.0, escalate => 900000.0, graceful_degradation => 1000.0,
      load_shedding => 1000.0, pause => 500.0, quorum_reconfiguration => 10000.0,
      supervisor_restart => 2000.0, throttle => 500.0}.

%%% Reading the input: types and sizes, in the C-node's order (see its `convert.rs').

-spec invalid(term()) -> no_return().
invalid(Detail) -> throw({invalid, Detail}).

decode(Input) when is_map(Input) ->
    known_keys(Input, input, [analysis, effectiveness, policy, topology]),
    A = required(Input, input, analysis),
    T = required(Input, input, topology),
    Analysis = analysis(A),
    Topology = topology(T),
    Eff = case maps:find(effectiveness, Input) of
        {ok, E} -> effectiveness(E);
        error -> #{}
    end,
    Policy = policy(maps:get(policy, Input, #{})),
    #{analysis => Analysis, topology => Topology, effectiveness => Eff, policy => Policy};
decode(_) ->
    invalid({not_a_map, input}).

known_keys(Map, Where, Known) ->
    Keys = maps:keys(Map),
    case lists:all(fun erlang:is_atom/1, Keys) of
        false -> invalid({bad_key, Where});
        true ->
            case lists:sort(Keys -- Known) of
                [] -> ok;
                [First | _] -> invalid({unknown_key, Where, First})
            end
    end.

required(Map, Where, Key) ->
    case maps:find(Key, Map) of
        {ok, V} -> V;
        error -> invalid({missing_key, Where, Key})
    end.

optional(Map, Key, Fun, Default) ->
    case maps:find(Key, Map) of
        {ok, V} -> Fun(V);
        error -> Default
    end.

is_label(L) when is_atom(L) -> true;
is_label(L) when is_binary(L) -> byte_size(L) >= 1 andalso byte_size(L) =< ?MAX_LABEL_BYTES;
is_label(_) -> false.

label(V, Where, Key) ->
    case is_label(V) of
        true -> V;
        false -> invalid({bad_value, Where, Key})
    end.

number(V, _Where, _Key) when is_float(V) -> V;
number(V, _Where, _Key) when is_integer(V), abs(V) =< ?MAX_INTEGER -> float(V);
number(_, Where, Key) -> invalid({bad_value, Where, Key}).

integer(V, _Where, _Key) when is_integer(V), abs(V) =< ?MAX_INTEGER -> V;
integer(_, Where, Key) -> invalid({bad_value, Where, Key}).

proper_length(L) when is_list(L) ->
    try length(L) catch error:badarg -> false end;
proper_length(_) ->
    false.

%% A proper list of at most Max elements, each satisfying Pred.
list_of(V, Where, Key, Max, Pred) ->
    case proper_length(V) of
        false -> invalid({bad_value, Where, Key});
        N when N > Max -> invalid({too_many, Key, Max});
        _ ->
            case lists:all(Pred, V) of
                true -> V;
                false -> invalid({bad_value, Where, Key})
            end
    end.

analysis(A) when is_map(A) ->
    W = analysis,
    FT = label(required(A, W, failure_type), W, failure_type),
    RC = optional(A, root_cause, fun(V) -> label(V, W, root_cause) end, undefined),
    C = number(required(A, W, confidence), W, confidence),
    AN = optional(A, affected_nodes,
                  fun(V) -> list_of(V, W, affected_nodes, ?MAX_NODES, fun erlang:is_atom/1) end, []),
    AS = optional(A, affected_services,
                  fun(V) -> list_of(V, W, affected_services, ?MAX_SERVICES, fun is_label/1) end, []),
    #{failure_type => FT, root_cause => RC, confidence => C, affected_nodes => AN, affected_services => AS};
analysis(_) ->
    invalid({not_a_map, analysis}).

topology(T) when is_map(T) ->
    Nodes0 = required(T, topology, nodes),
    case proper_length(Nodes0) of
        false -> invalid({bad_value, topology, nodes});
        NN when NN > ?MAX_NODES -> invalid({too_many, nodes, ?MAX_NODES});
        _ -> ok
    end,
    Nodes = [node_spec(N) || N <- Nodes0],
    Services = case maps:find(services, T) of
        error -> [];
        {ok, S0} ->
            case proper_length(S0) of
                false -> invalid({bad_value, topology, services});
                NS when NS > ?MAX_SERVICES -> invalid({too_many, services, ?MAX_SERVICES});
                _ -> services(S0, 0, [])
            end
    end,
    #{nodes => Nodes, services => Services};
topology(_) ->
    invalid({not_a_map, topology}).

services([], _Edges, Acc) ->
    lists:reverse(Acc);
services([S0 | Rest], Edges, Acc) ->
    S = service_spec(S0),
    E = Edges + length(maps:get(depends_on, S)),
    case E > ?MAX_DEPENDENCIES of
        true -> invalid({too_many, dependencies, ?MAX_DEPENDENCIES});
        false -> services(Rest, E, [S | Acc])
    end.

node_spec(N) when is_map(N) ->
    Name = case required(N, node, name) of
        A when is_atom(A) -> A;
        _ -> invalid({bad_value, node, name})
    end,
    H = optional(N, headroom, fun(V) -> number(V, node, headroom) end, 0.0),
    Up = optional(N, up, fun(V) when is_boolean(V) -> V; (_) -> invalid({bad_value, node, up}) end, true),
    #{name => Name, headroom => H, up => Up};
node_spec(_) ->
    invalid({not_a_map, node}).

service_spec(S) when is_map(S) ->
    W = service,
    Name = label(required(S, W, name), W, name),
    Node = case required(S, W, node) of
        A when is_atom(A) -> A;
        _ -> invalid({bad_value, W, node})
    end,
    Deps = optional(S, depends_on,
                    fun(V) -> list_of(V, W, depends_on, ?MAX_DEPENDS_ON, fun is_label/1) end, []),
    Sup = optional(S, supervisor, fun(V) -> label(V, W, supervisor) end, none),
    Load = optional(S, load, fun(V) -> number(V, W, load) end, 0.0),
    #{name => Name, node => Node, depends_on => Deps, supervisor => Sup, load => Load};
service_spec(_) ->
    invalid({not_a_map, service}).

%% Atom keys naming strategies, sorted; a non-atom key or an unknown strategy is an error.
strategy_keys(Map, Where) ->
    Keys = maps:keys(Map),
    case lists:all(fun erlang:is_atom/1, Keys) of
        false -> invalid({bad_key, Where});
        true ->
            Sorted = lists:sort(Keys),
            [invalid({unknown_strategy, K}) || K <- Sorted, not lists:member(K, ?STRATEGIES)],
            Sorted
    end.

effectiveness(E) when is_map(E) ->
    maps:from_list([{S, stats(S, maps:get(S, E))} || S <- strategy_keys(E, effectiveness)]);
effectiveness(_) ->
    invalid({not_a_map, effectiveness}).

stats(S, V) when is_map(V) ->
    W = {effectiveness, S},
    Ok = integer(required(V, W, successes), W, successes),
    Ko = integer(required(V, W, failures), W, failures),
    Mean = optional(V, mean_recovery_ms,
                    fun(undefined) -> undefined; (M) -> number(M, W, mean_recovery_ms) end, undefined),
    #{successes => Ok, failures => Ko, mean_recovery_ms => Mean};
stats(S, _) ->
    invalid({not_a_map, {effectiveness, S}}).

policy(P) when is_map(P) ->
    W = policy,
    known_keys(P, W, ?POLICY_KEYS),
    Allowed = optional(P, allowed, fun allowed/1, #{}),
    Num = fun(K) -> optional(P, K, fun(V) -> number(V, W, K) end, undefined) end,
    Int = fun(K) -> optional(P, K, fun(V) -> integer(V, W, K) end, undefined) end,
    Slo = Num(slo_budget_ms),
    Blast = Int(blast_radius_limit),
    Quorum = Int(quorum_size),
    Recovery = optional(P, default_recovery_ms, fun default_recovery/1, #{}),
    Step = Num(step_ms),
    Shed = Int(shed_percent),
    Throttle = Int(throttle_percent),
    Degrade = Num(degrade_impact),
    #{allowed => Allowed, slo_budget_ms => Slo, blast_radius_limit => Blast, quorum_size => Quorum,
      default_recovery_ms => Recovery, step_ms => Step, shed_percent => Shed,
      throttle_percent => Throttle, degrade_impact => Degrade};
policy(_) ->
    invalid({not_a_map, policy}).

allowed(M) when is_map(M) ->
    map_size(M) > ?MAX_ALLOWED andalso invalid({too_many, allowed, ?MAX_ALLOWED}),
    Keys = maps:keys(M),
    lists:all(fun is_label/1, Keys) orelse invalid({bad_key, allowed}),
    maps:from_list([{FT, allowed_list(FT, maps:get(FT, M))} || FT <- lists:sort(Keys)]);
allowed(_) ->
    invalid({bad_value, policy, allowed}).

allowed_list(FT, L) ->
    case proper_length(L) =/= false andalso lists:all(fun erlang:is_atom/1, L) of
        false -> invalid({bad_value, allowed, FT});
        true ->
            [case lists:member(S, ?STRATEGIES) of
                 true -> S;
                 false -> invalid({unknown_strategy, S})
             end || S <- L]
    end.

default_recovery(M) when is_map(M) ->
    maps:from_list([{S, number(maps:get(S, M), default_recovery_ms, S)}
                    || S <- strategy_keys(M, default_recovery_ms)]);
default_recovery(_) ->
    invalid({bad_value, policy, default_recovery_ms}).

%%% Validation (ranges, then references, then cycles) and indexes.

in_range(V, Lo, Hi) -> V >= Lo andalso V =< Hi.

check(true, _Detail) -> ok;
check(false, Detail) -> invalid(Detail).

problem(#{analysis := A, topology := #{nodes := Nodes, services := Services}, effectiveness := Eff,
          policy := PolicySpec} = In) ->
    check(in_range(maps:get(confidence, A), 0.0, 1.0), {bad_value, analysis, confidence}),
    [check(in_range(H, 0.0, 1.0), {bad_value, node, headroom}) || #{headroom := H} <- Nodes],
    [check(in_range(L, 0.0, 1.0), {bad_value, service, load}) || #{load := L} <- Services],
    [begin
         W = {effectiveness, S},
         check(in_range(Ok, 0, ?MAX_INTEGER), {bad_value, W, successes}),
         check(in_range(Ko, 0, ?MAX_INTEGER), {bad_value, W, failures}),
         Mean =:= undefined orelse check(in_range(Mean, 0.0, ?MAX_RECOVERY_MS), {bad_value, W, mean_recovery_ms})
     end || {S, #{successes := Ok, failures := Ko, mean_recovery_ms := Mean}} <- lists:sort(maps:to_list(Eff))],
    Policy = resolve_policy(PolicySpec, length(Nodes)),
    %% Names.
    NodeNames = [N || #{name := N} <- Nodes],
    first_duplicate(NodeNames, duplicate_node),
    SvcNames = [N || #{name := N} <- Services],
    first_duplicate(SvcNames, duplicate_service),
    NodeIx = maps:from_list(lists:zip(NodeNames, lists:seq(1, length(NodeNames)))),
    SvcIx = maps:from_list(lists:zip(SvcNames, lists:seq(1, length(SvcNames)))),
    SvcNode = [case NodeIx of
                   #{N := I} -> I;
                   _ -> invalid({unknown_node, N})
               end || #{node := N} <- Services],
    Deps = [dedup([case SvcIx of
                       #{D := J} -> J;
                       _ -> invalid({unknown_dependency, S, D})
                   end || D <- Ds])
            || #{name := S, depends_on := Ds} <- Services],
    AffNodes = [case NodeIx of
                    #{N := I} -> I;
                    _ -> invalid({unknown_node, N})
                end || N <- maps:get(affected_nodes, A)],
    AffSvcs = [case SvcIx of
                   #{S := I} -> I;
                   _ -> invalid({unknown_service, S})
               end || S <- maps:get(affected_services, A)],
    %% Levels and the topological order.
    NS = length(Services),
    DepsT = list_to_tuple(Deps),
    NamesT = list_to_tuple(SvcNames),
    Dependents = dependents(Deps, NS),
    Level = levels(DepsT, Dependents, NS, NamesT),
    Order = [I || {_, _, I} <- lists:sort([{maps:get(I, Level), element(I, NamesT), I}
                                          || I <- lists:seq(1, NS)])],
    TopoPos = list_to_tuple(positions(Order, NS)),
    SvcNodeT = list_to_tuple(SvcNode),
    ServicesT = list_to_tuple(Services),
    %% Per node and per supervisor group, in topological order.
    On = lists:foldr(fun(I, Acc) ->
                         maps:update_with(element(I, SvcNodeT), fun(L) -> [I | L] end, [I], Acc)
                     end, #{}, Order),
    Group = list_to_tuple([case S of
                               #{supervisor := none} -> none;
                               #{supervisor := Sup} -> {Sup, element(I, SvcNodeT)}
                           end || {I, S} <- lists:zip(lists:seq(1, NS), Services)]),
    Members = lists:foldr(fun(I, Acc) ->
                              case element(I, Group) of
                                  none -> Acc;
                                  G -> maps:update_with(G, fun(L) -> [I | L] end, [I], Acc)
                              end
                          end, #{}, Order),
    NodesT = list_to_tuple([N#{headroom := H + 0.0} || #{headroom := H} = N <- Nodes]),
    NodeOrder = [I || {_, I} <- lists:sort(lists:zip(NodeNames, lists:seq(1, length(NodeNames))))],
    AffNodeSet = maps:from_list([{I, true} || I <- AffNodes]),
    AffNodesSorted = [I || I <- NodeOrder, maps:is_key(I, AffNodeSet)],
    P0 = #{input => In, policy => Policy, nodes => NodesT, node_order => NodeOrder,
           services => ServicesT, svc_node => SvcNodeT, dependents => Dependents, topo_pos => TopoPos,
           on => On, group => Group, members => Members, affected_node => AffNodeSet,
           affected_nodes => AffNodesSorted, n_services => NS},
    Targets = in_topo_order(AffSvcs ++ lists:append([maps:get(N, On, []) || N <- AffNodesSorted]), P0),
    P0#{targets => Targets}.

resolve_policy(Spec, NodeCount) ->
    W = policy,
    Get = fun(K, Default) -> case maps:get(K, Spec) of undefined -> Default; V -> V end end,
    Slo = Get(slo_budget_ms, 300000.0),
    check(Slo > 0.0 andalso Slo =< ?MAX_SLO_BUDGET_MS, {bad_value, W, slo_budget_ms}),
    Blast = Get(blast_radius_limit, 100),
    check(in_range(Blast, 0, ?MAX_INTEGER), {bad_value, W, blast_radius_limit}),
    Quorum = Get(quorum_size, NodeCount div 2 + 1),
    check(in_range(Quorum, 1, ?MAX_INTEGER), {bad_value, W, quorum_size}),
    Given = maps:get(default_recovery_ms, Spec),
    [check(in_range(Ms, 0.0, ?MAX_RECOVERY_MS), {bad_value, default_recovery_ms, S})
     || {S, Ms} <- lists:sort(maps:to_list(Given))],
    Recovery = maps:merge(default_recovery_ms(), Given),
    Step = Get(step_ms, 100.0),
    check(in_range(Step, 0.0, ?MAX_STEP_MS), {bad_value, W, step_ms}),
    Shed = Get(shed_percent, 25),
    check(in_range(Shed, 1, 100), {bad_value, W, shed_percent}),
    Throttle = Get(throttle_percent, 50),
    check(in_range(Throttle, 1, 100), {bad_value, W, throttle_percent}),
    Degrade = Get(degrade_impact, 0.3),
    check(in_range(Degrade, 0.0, 1.0), {bad_value, W, degrade_impact}),
    Allowed = maps:merge(default_allowed(), maps:map(fun(_, L) -> dedup(L) end, maps:get(allowed, Spec))),
    #{allowed => Allowed, slo_budget_ms => Slo, blast_radius_limit => Blast, quorum_size => Quorum,
      default_recovery_ms => Recovery, step_ms => Step, shed_percent => Shed,
      throttle_percent => Throttle, degrade_impact => Degrade}.

first_duplicate(Names, Tag) ->
    _ = lists:foldl(fun(N, Seen) ->
                    case Seen of
                        #{N := _} -> invalid({Tag, N});
                        _ -> Seen#{N => true}
                    end
                end, #{}, Names),
    ok.

%% First-occurrence deduplication.
dedup(L) ->
    dedup(L, #{}, []).

dedup([H | T], Seen, Acc) ->
    case Seen of
        #{H := _} -> dedup(T, Seen, Acc);
        _ -> dedup(T, Seen#{H => true}, [H | Acc])
    end;
dedup([], _, Acc) ->
    lists:reverse(Acc).

dependents(Deps, NS) ->
    M = lists:foldl(fun({S, Ds}, Acc) ->
                        lists:foldl(fun(D, A) -> maps:update_with(D, fun(L) -> [S | L] end, [S], A) end, Acc, Ds)
                    end, #{}, lists:zip(lists:seq(1, NS), Deps)),
    list_to_tuple([maps:get(I, M, []) || I <- lists:seq(1, NS)]).

%% Kahn's algorithm: the level of every service (0 without dependencies, else one more than the
%% deepest dependency), or the dependency cycle error.
levels(DepsT, Dependents, NS, NamesT) ->
    Pending0 = maps:from_list([{I, length(element(I, DepsT))} || I <- lists:seq(1, NS)]),
    Ready = [I || I <- lists:seq(1, NS), element(I, DepsT) =:= []],
    Level0 = maps:from_list([{I, 0} || I <- lists:seq(1, NS)]),
    {Level, Pending, Done} = kahn(Ready, Dependents, Pending0, Level0, 0),
    case Done < NS of
        true -> invalid({dependency_cycle, cycle_member(DepsT, Pending, NamesT)});
        false -> Level
    end.

kahn([], _Dependents, Pending, Level, Done) ->
    {Level, Pending, Done};
kahn([U | Rest], Dependents, Pending, Level, Done) ->
    LU = maps:get(U, Level),
    {Ready, P, L} = lists:foldl(
        fun(D, {R, P0, L0}) ->
            PD = maps:get(D, P0) - 1,
            L1 = L0#{D := max(maps:get(D, L0), LU + 1)},
            case PD of
                0 -> {[D | R], P0#{D := 0}, L1};
                _ -> {R, P0#{D := PD}, L1}
            end
        end, {Rest, Pending, Level}, element(U, Dependents)),
    kahn(Ready, Dependents, P, L, Done + 1).

%% From the smallest-named left-over service, follow the first left-over dependency until a
%% service repeats: the smallest name on that cycle.
cycle_member(DepsT, Pending, NamesT) ->
    Left = fun(I) -> maps:get(I, Pending) > 0 end,
    {_, Start} = lists:min([{element(I, NamesT), I} || I <- maps:keys(Pending), Left(I)]),
    walk(Start, DepsT, Left, NamesT, #{}, []).

walk(Cur, DepsT, Left, NamesT, At, Path) ->
    case At of
        #{Cur := _} ->
            Cycle = lists:takewhile(fun(I) -> I =/= Cur end, Path),
            lists:min([element(I, NamesT) || I <- [Cur | Cycle]]);
        _ ->
            [Next | _] = [D || D <- element(Cur, DepsT), Left(D)],
            walk(Next, DepsT, Left, NamesT, At#{Cur => true}, [Cur | Path])
    end.

positions(Order, NS) ->
    M = maps:from_list(lists:zip(Order, lists:seq(1, NS))),
    [maps:get(I, M) || I <- lists:seq(1, NS)].

in_topo_order(Services, #{topo_pos := Pos}) ->
    [I || {_, I} <- lists:usort([{element(I, Pos), I} || I <- Services])].

%% Services disrupted: the given ones and everything that depends on them.
blast_radius(Scope, #{dependents := Dependents}) ->
    Seen = maps:from_list([{S, true} || S <- Scope]),
    bfs(maps:keys(Seen), Dependents, Seen, 0).

bfs([], _Dependents, _Seen, N) ->
    N;
bfs([S | Rest], Dependents, Seen, N) ->
    {Stack, Seen1} = lists:foldl(fun(D, {St, Se}) ->
                                     case Se of
                                         #{D := _} -> {St, Se};
                                         _ -> {[D | St], Se#{D => true}}
                                     end
                                 end, {Rest, Seen}, element(S, Dependents)),
    bfs(Stack, Dependents, Seen1, N + 1).

%%% Candidates

best(Candidates, P) ->
    Eligible = [Plan || {_, _, {ok, Plan}} <- Candidates],
    case Eligible of
        [] -> escalate(Candidates, P);
        [First | Rest] ->
            lists:foldl(fun(#{cost := #{total := T}} = Q, #{cost := #{total := B}} = Best) ->
                            case T < B of
                                true -> Q;
                                false -> Best
                            end
                        end, First, Rest)
    end.

candidates(#{input := #{analysis := #{failure_type := FT}}, policy := #{allowed := Allowed}} = P) ->
    List = case Allowed of
        #{FT := L} -> L;
        #{default := L} -> L;
        _ -> []
    end,
    Parts = [case S of
                 supervisor_restart -> restarts(P);
                 escalate -> escalate_here;
                 _ -> [{S, none, single(S, P)}]
             end || S <- List],
    Others = lists:append([Part || Part <- Parts, Part =/= escalate_here]),
    %% The escalate candidate goes where the policy lists it, and records the others' rejections.
    lists:append([case Part of
                      escalate_here -> [{escalate, none, {ok, escalate(Others, P)}}];
                      _ -> Part
                  end || Part <- Parts]).

escalate(Others, #{input := #{analysis := #{failure_type := FT, root_cause := RC}}} = P) ->
    Rejected = [case Scope of
                    none -> #{strategy => S, reason => R};
                    _ -> #{strategy => S, reason => R, scope => Scope}
                end || {S, Scope, {rejected, R}} <- Others],
    Reason = case [x || {_, _, {ok, _}} <- Others] of
        [] -> no_feasible_plan;
        _ -> cheapest
    end,
    Step = #{action => escalate, failure_type => FT, root_cause => RC, reason => Reason,
             rejected => Rejected},
    finish(escalate, [Step], #{steps => 1, factor => 1.0, impact => 1.0, extra_load => 0.0,
                               radius => 0, coverage => 1.0}, P).

restarts(#{targets := T} = P) ->
    Quick = {supervisor_restart, quick, restart_children(T, quick, P)},
    case T of
        [] -> [Quick];
        _ ->
            #{group := Group, members := Members} = P,
            Wide = in_topo_order(lists:append([case element(S, Group) of
                                                   none -> [S];
                                                   G -> maps:get(G, Members)
                                               end || S <- T]), P),
            Full = [{supervisor_restart, full, restart_children(Wide, full, P)} || length(Wide) > length(T)],
            Cold = [{supervisor_restart, cold, restart_cold(Wide, P)}
                    || lists:all(fun(S) -> element(S, Group) =/= none end, T)],
            [Quick | Full ++ Cold]
    end.

first_down_node(Services, #{svc_node := SvcNode, nodes := Nodes}) ->
    case [N || S <- Services, N <- [element(S, SvcNode)], not maps:get(up, element(N, Nodes))] of
        [] -> ok;
        [N | _] -> {node_down, maps:get(name, element(N, Nodes))}
    end.

check_radius(Radius, #{policy := #{blast_radius_limit := Limit}}) ->
    case Radius > Limit of
        true -> {blast_radius, Radius, Limit};
        false -> ok
    end.

restart_children([], _Scope, _P) ->
    {rejected, nothing_to_act_on};
restart_children(Services, Scope, P) ->
    case first_down_node(Services, P) of
        ok ->
            Radius = blast_radius(Services, P),
            case check_radius(Radius, P) of
                ok ->
                    Steps = [#{action => restart_child, service => svc_name(S, P),
                               node => svc_node_name(S, P), scope => Scope} || S <- Services],
                    C = confidence(P),
                    Coverage = case Scope of
                        quick -> C;
                        full -> C + (1.0 - C) * 0.5
                    end,
                    {ok, finish(supervisor_restart, Steps,
                                #{steps => length(Services), factor => 1.0, impact => 1.0,
                                  extra_load => load_of(Services, P), radius => Radius,
                                  coverage => Coverage}, P)};
                Reason -> {rejected, Reason}
            end;
        Reason -> {rejected, Reason}
    end.

restart_cold(Services, #{group := Group, members := Members} = P) ->
    case first_down_node(Services, P) of
        ok ->
            Radius = blast_radius(Services, P),
            case check_radius(Radius, P) of
                ok ->
                    Groups = dedup([G || S <- Services, G <- [element(S, Group)], G =/= none]),
                    Steps = [begin
                                 [First | _] = maps:get(G, Members),
                                 #{action => restart_supervisor, supervisor => Sup,
                                   node => svc_node_name(First, P)}
                             end || {Sup, _} = G <- Groups],
                    {ok, finish(supervisor_restart, Steps,
                                #{steps => length(Groups), factor => 2.0, impact => 1.0,
                                  extra_load => load_of(Services, P), radius => Radius,
                                  coverage => 1.0}, P)};
                Reason -> {rejected, Reason}
            end;
        Reason -> {rejected, Reason}
    end.

single(quorum_reconfiguration, P) -> quorum(P);
single(backend_failover, P) -> failover(P);
single(S, P) -> per_service(S, P).

healthy(N, #{nodes := Nodes, affected_node := Aff}) ->
    maps:get(up, element(N, Nodes)) andalso not maps:is_key(N, Aff).

quorum(#{affected_nodes := Removed, node_order := Order, policy := #{quorum_size := Quorum}} = P) ->
    case Removed of
        [] -> {rejected, nothing_to_act_on};
        _ ->
            Remaining = length([N || N <- Order, healthy(N, P)]),
            Moved = in_topo_order(lists:append([maps:get(N, maps:get(on, P), []) || N <- Removed]), P),
            Radius = blast_radius(Moved, P),
            Extra = load_of(Moved, P),
            Spare = lists:foldl(fun(N, Acc) -> Acc + maps:get(headroom, element(N, maps:get(nodes, P))) end,
                                0.0, [N || N <- Order, healthy(N, P)]),
            Rejection = if
                Remaining < Quorum -> {quorum, Remaining, Quorum};
                true ->
                    case check_radius(Radius, P) of
                        ok when Extra > Spare -> no_capacity;
                        Other -> Other
                    end
            end,
            case Rejection of
                ok ->
                    Steps = [#{action => remove_node, node => node_name(N, P)} || N <- Removed],
                    {ok, finish(quorum_reconfiguration, Steps,
                                #{steps => length(Removed), factor => 1.0, impact => 1.0,
                                  extra_load => Extra, radius => Radius, coverage => confidence(P)}, P)};
                _ -> {rejected, Rejection}
            end
    end.

%% Moves every target to the healthy node with the most headroom left (ties: the smallest
%% name), one service at a time in topological order.
failover(#{targets := T} = P) ->
    case T of
        [] -> {rejected, nothing_to_act_on};
        _ ->
            Radius = blast_radius(T, P),
            case check_radius(Radius, P) of
                ok -> failover_pack(T, Radius, P);
                Reason -> {rejected, Reason}
            end
    end.

failover_pack(T, Radius, #{node_order := Order, nodes := Nodes} = P) ->
    Ranked = lists:zip(lists:seq(1, length(Order)), Order),
    RankOf = maps:from_list([{N, R} || {R, N} <- Ranked]),
    NodeOf = maps:from_list(Ranked),
    Room0 = maps:from_list([{N, maps:get(headroom, element(N, Nodes))} || N <- Order]),
    %% Keyed {Room, -Rank}: the largest is the most room, then the smallest name.
    Free0 = gb_sets:from_list([{maps:get(N, Room0), -maps:get(N, RankOf)} || N <- Order, healthy(N, P)]),
    Pack = fun(S, {Steps, Room, Free}) ->
        From = element(S, maps:get(svc_node, P)),
        Load = maps:get(load, element(S, maps:get(services, P))),
        case pick(Free, From, NodeOf) of
            none -> throw({no_capacity, failover});
            {Key, To} ->
                case maps:get(To, Room) < Load of
                    true -> throw({no_capacity, failover});
                    false ->
                        Left = maps:get(To, Room) - Load,
                        Free1 = gb_sets:add({Left, element(2, Key)}, gb_sets:delete(Key, Free)),
                        Step = #{action => failover, service => svc_name(S, P),
                                 from => node_name(From, P), to => node_name(To, P)},
                        {[Step | Steps], Room#{To := Left}, Free1}
                end
        end
    end,
    try lists:foldl(Pack, {[], Room0, Free0}, T) of
        {Steps, _, _} ->
            {ok, finish(backend_failover, lists:reverse(Steps),
                        #{steps => length(T), factor => 1.0, impact => 1.0, extra_load => load_of(T, P),
                          radius => Radius, coverage => confidence(P)}, P)}
    catch
        throw:{no_capacity, failover} -> {rejected, no_capacity}
    end.

%% The largest key whose node is not `From'.
pick(Free, From, NodeOf) ->
    case gb_sets:is_empty(Free) of
        true -> none;
        false ->
            {Key, Rest} = gb_sets:take_largest(Free),
            case maps:get(-element(2, Key), NodeOf) of
                From ->
                    case gb_sets:is_empty(Rest) of
                        true -> none;
                        false ->
                            Next = gb_sets:largest(Rest),
                            {Next, maps:get(-element(2, Next), NodeOf)}
                    end;
                To -> {Key, To}
            end
    end.

per_service(S, #{targets := T, policy := Pol} = P) ->
    case T of
        [] -> {rejected, nothing_to_act_on};
        _ ->
            Radius = blast_radius(T, P),
            case check_radius(Radius, P) of
                ok ->
                    #{shed_percent := Shed, throttle_percent := Thr, degrade_impact := Deg} = Pol,
                    {Impact, Step} = case S of
                        load_shedding -> {float(Shed) / 100.0, fun(N) -> #{action => shed, service => N, percent => Shed} end};
                        throttle -> {float(Thr) / 100.0, fun(N) -> #{action => throttle, service => N, percent => Thr} end};
                        graceful_degradation -> {Deg, fun(N) -> #{action => degrade, service => N} end};
                        pause -> {1.0, fun(N) -> #{action => pause, service => N} end}
                    end,
                    {ok, finish(S, [Step(svc_name(I, P)) || I <- T],
                                #{steps => length(T), factor => 1.0, impact => Impact, extra_load => 0.0,
                                  radius => Radius, coverage => confidence(P)}, P)};
                Reason -> {rejected, Reason}
            end
    end.

%%% Cost

finish(Strategy, Steps, #{steps := N, factor := Factor, impact := Impact, extra_load := Extra,
                          radius := Radius, coverage := Coverage},
       #{input := #{topology := #{nodes := Nodes}, effectiveness := Eff}, policy := Pol, n_services := NS}) ->
    #{step_ms := StepMs, slo_budget_ms := Slo, default_recovery_ms := Defaults} = Pol,
    {Ok, Ko, Base} = case Eff of
        #{Strategy := #{successes := O, failures := K, mean_recovery_ms := M}} ->
            {O, K, case M of undefined -> maps:get(Strategy, Defaults); _ -> M end};
        _ ->
            {0, 0, maps:get(Strategy, Defaults)}
    end,
    Estimated = round(Base * Factor + StepMs * float(max(N, 1) - 1)),
    Success = (float(Ok) + 1.0) / (float(Ok) + float(Ko) + 2.0) * Coverage,
    NUp = max(1, length([x || #{up := true} <- Nodes])),
    Downtime = float(Estimated) * Impact / Slo,
    Resource = Extra / float(NUp),
    Risk = (1.0 - Success) + float(Radius) / float(max(1, NS)),
    #{strategy => Strategy, steps => Steps, rollback => rollback(Steps), estimated_ms => Estimated,
      cost => #{downtime => Downtime, resource => Resource, risk => Risk,
                total => Downtime + Resource + Risk},
      confidence => Success}.

%% The inverse of every reversible step, last step first.
rollback(Steps) ->
    [Inv || Step <- lists:reverse(Steps), Inv <- inverse(Step)].

inverse(#{action := remove_node, node := N}) -> [#{action => add_node, node => N}];
inverse(#{action := failover, service := S, from := F, to := T}) ->
    [#{action => failback, service => S, from => T, to => F}];
inverse(#{action := shed, service := S}) -> [#{action => stop_shedding, service => S}];
inverse(#{action := throttle, service := S}) -> [#{action => unthrottle, service => S}];
inverse(#{action := degrade, service := S}) -> [#{action => restore, service => S}];
inverse(#{action := pause, service := S}) -> [#{action => resume, service => S}];
inverse(_) -> [].

load_of(Services, #{services := ServicesT}) ->
    lists:foldl(fun(S, Acc) -> Acc + maps:get(load, element(S, ServicesT)) end, 0.0, Services).

confidence(#{input := #{analysis := #{confidence := C}}}) -> C.

svc_name(S, #{services := ServicesT}) -> maps:get(name, element(S, ServicesT)).

svc_node_name(S, #{svc_node := SvcNode} = P) -> node_name(element(S, SvcNode), P).

node_name(N, #{nodes := Nodes}) -> maps:get(name, element(N, Nodes)).
