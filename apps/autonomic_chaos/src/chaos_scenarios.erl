%%% @doc The chaos scenarios, all real: how each is injected, healed, detected and verified as
%%% recovered.
%%%
%%% | scenario | inject | heal (after `hold_ms') | detected by the event |
%%% |---|---|---|---|
%%% | `node_kill' | `kill -9' of the node's OS process | boot it again, a quorum member again | `node_down' / `node_suspected' of it |
%%% | `process_kill' | `exit(Pid, kill)' of a random workload worker | (its supervisor restarts it) | `failure_reported' `process_crash' |
%%% | `network_partition' | cut one node off the others | reconnect, a quorum member again | `network_partition', `minority_entered', `node_down' |
%%% | `backend_latency' | every call to a store takes 600 ms | clear | `backend_down' of its check, its breaker opening |
%%% | `backend_error' | every call to a store fails | clear | as above |
%%% | `memory_pressure' | a process allocates to the monitor's threshold | stop it | `resource_exhausted' `memory' |
%%% | `cpu_saturation' | busy processes on every scheduler | stop them | `resource_exhausted' `cpu', the workload's `failure_reported' `cpu_saturation' |
%%%
%%% An `incident_detected' of the MAPE-K loop after the injection whose target names the
%%% victim (any, for CPU saturation and partitions) also counts as detection.
%%% Recovered means the service is back where the fault hit: a probe (a real job, submitted and
%%% processed) succeeds within its deadline through every live node outside the fault, and the
%%% scenario's own condition holds (every worker running again; the majority side has quorum; a
%%% hog is gone; the majority side of a partition has quorum).
-module(chaos_scenarios).

-export([all/0, hold_ms/1, targets/2, inject/2, heal/2, detects/2, recovered/2]).

-define(PROBE_MS, 1000).

-type fault() :: #{scenario := atom(), victim := term(), atom() => term()}.
-export_type([fault/0]).

%% @doc Every scenario.
-spec all() -> [atom()].
all() ->
    autonomic_policy_validate:scenarios().

%% @doc How long a fault is held before chaos heals it.
-spec hold_ms(atom()) -> pos_integer().
hold_ms(node_kill) -> 2000;
hold_ms(process_kill) -> 1;
hold_ms(network_partition) -> 2000;
hold_ms(backend_latency) -> 2000;
hold_ms(backend_error) -> 2000;
hold_ms(memory_pressure) -> 1500;
hold_ms(cpu_saturation) -> 1500.

%% @doc Narrows the safe victims of a scenario to those it can hurt: a backend fault needs a
%% store's node.
-spec targets(atom(), [term()]) -> [term()].
targets(S, Victims) when S =:= backend_latency; S =:= backend_error ->
    Stores = stores(),
    [V || V <- Victims, lists:member(V, Stores)];
targets(_, Victims) ->
    Victims.

stores() ->
    case chaos_cluster:nodes() of
        [P, S | _] -> [P, S];
        Ns -> Ns
    end.

%% @doc Injects a fault; returns what healing and checking it need.
-spec inject(atom(), term()) -> {ok, map()} | {error, term()}.
inject(node_kill, V) ->
    ok_or(chaos_cluster:kill(V), #{});
inject(process_kill, V) ->
    case chaos_cluster:call(V, supervisor, which_children, [jobs_worker_sup]) of
        [_ | _] = Children ->
            Pids = [P || {_, P, _, _} <- Children, is_pid(P)],
            Pid = lists:nth(1 + erlang:phash2(make_ref(), length(Pids)), Pids),
            true = chaos_cluster:call(V, erlang, exit, [Pid, kill]),
            {ok, #{pid => Pid, children => length(Children)}};
        Other ->
            {error, {no_workers, Other}}
    end;
inject(network_partition, {Minority, Majority}) ->
    ok_or(chaos_cluster:cut(Minority, Majority), #{});
inject(backend_latency, V) ->
    ok_or(chaos_cluster:call(V, jobs_store, set_fault, [#{latency_ms => 600}]), #{});
inject(backend_error, V) ->
    ok_or(chaos_cluster:call(V, jobs_store, set_fault, [#{error => true}]), #{});
inject(memory_pressure, V) ->
    hog(V, memory, hold_ms(memory_pressure));
inject(cpu_saturation, V) ->
    hog(V, cpu, hold_ms(cpu_saturation)).

hog(V, Kind, Hold) ->
    case chaos_cluster:call(V, chaos_hog, start, [Kind, #{hold_ms => Hold}]) of
        {ok, _} -> {ok, #{}};
        Other -> {error, Other}
    end.

ok_or(ok, Ctx) -> {ok, Ctx};
ok_or(Other, _) -> {error, Other}.

%% @doc Ends a fault (chaos's part: the system's recovery is not this).
-spec heal(fault(), map()) -> ok | {error, term()}.
heal(#{scenario := node_kill, victim := V}, _) ->
    case chaos_cluster:restart(V) of
        ok -> rejoin(V, erlang:monotonic_time(millisecond) + 10000);
        Error -> Error
    end;
heal(#{scenario := network_partition, victim := {Min, _}}, _) ->
    case chaos_cluster:heal() of
        ok -> rejoin_all(Min);
        Error -> Error
    end;
heal(#{scenario := S, victim := V}, _) when S =:= backend_latency; S =:= backend_error ->
    case chaos_cluster:call(V, jobs_store, clear_fault, []) of
        ok -> ok;
        Other -> {error, Other}
    end;
heal(#{scenario := memory_pressure, victim := V}, _) ->
    _ = chaos_cluster:call(V, chaos_hog, stop, [memory]),
    ok;
heal(#{scenario := cpu_saturation, victim := V}, _) ->
    _ = chaos_cluster:call(V, chaos_hog, stop, [cpu]),
    ok;
heal(_, _) ->
    ok.

rejoin_all(Nodes) ->
    Deadline = erlang:monotonic_time(millisecond) + 10000,
    case [R || N <- Nodes, R <- [rejoin(N, Deadline)], R =/= ok] of
        [] -> ok;
        [E | _] -> E
    end.

%% A restarted (or reconnected) node is back once it is a quorum member again. Nothing here adds
%% it: the quorum manager restores a lost node by itself (it and the loop both remove a lost node
%% onto standby), so this waits and checks that it does.
rejoin(V, Deadline) ->
    Others = chaos_cluster:live() -- [V],
    Member = fun() -> lists:any(fun(N) -> case chaos_cluster:call(N, quorum_manager, get_quorum_status, []) of
                                              #{have_quorum := true, members := M} -> lists:member(V, M);
                                              _ -> false
                                          end end, Others)
             end,
    case Member() of
        true -> ok;
        false when Others =:= [] -> ok;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> {error, {not_rejoined, V}};
                false ->
                    timer:sleep(250),
                    rejoin(V, Deadline)
            end
    end.

%% @doc Whether an event (from any node's bus) is the detection of a fault.
-spec detects(fault(), map()) -> boolean().
detects(#{scenario := S} = F, #{type := incident_detected, detail := D}) ->
    %% The loop's incident, when it is about this fault's target (a leftover incident of an
    %% earlier fault must not count): host-wide CPU and a partition concern every node.
    case S of
        cpu_saturation -> true;
        network_partition -> true;
        _ -> mentions(maps:get(target, D, undefined), target_terms(F))
    end;
detects(#{scenario := node_kill, victim := V}, #{type := T, detail := #{peer := V}})
  when T =:= node_down; T =:= node_suspected ->
    true;
detects(#{scenario := process_kill, victim := V}, #{type := failure_reported, node := V,
                                                    detail := #{kind := process_crash}}) ->
    true;
detects(#{scenario := network_partition}, #{type := T}) when T =:= network_partition; T =:= minority_entered ->
    true;
detects(#{scenario := network_partition, victim := {Min, Maj}}, #{type := node_down, node := N, detail := #{peer := P}}) ->
    (lists:member(N, Min) andalso lists:member(P, Maj)) orelse (lists:member(N, Maj) andalso lists:member(P, Min));
detects(#{scenario := S, victim := V}, #{type := backend_down, detail := #{check := C}})
  when S =:= backend_latency; S =:= backend_error ->
    C =:= check_of(V);
detects(#{scenario := S, victim := V}, #{type := breaker_state_changed, detail := #{breaker := B, to := open}})
  when S =:= backend_latency; S =:= backend_error ->
    B =:= jobs_backend:breaker(V);
detects(#{scenario := memory_pressure, victim := V}, #{type := resource_exhausted, node := V, detail := #{resource := memory}}) ->
    true;
detects(#{scenario := cpu_saturation}, #{type := resource_exhausted, detail := #{resource := cpu}}) ->
    true;
detects(#{scenario := cpu_saturation, victim := V}, #{type := failure_reported, node := V,
                                                      detail := #{kind := cpu_saturation}}) ->
    true;
detects(_, _) ->
    false.

target_terms(#{scenario := S, victim := V}) when S =:= backend_latency; S =:= backend_error ->
    [V, jobs_store, check_of(V)];
target_terms(#{victim := V}) ->
    [V].

mentions(T, Terms) ->
    lists:member(T, Terms) orelse
        case T of
            _ when is_tuple(T) -> mentions(tuple_to_list(T), Terms);
            [H | R] -> mentions(H, Terms) orelse mentions(R, Terms);
            _ when is_map(T) -> mentions(maps:to_list(T), Terms);
            _ -> false
        end.

check_of(V) ->
    case stores() of
        [V | _] -> jobs_store_primary;
        _ -> jobs_store_secondary
    end.

%% @doc Whether the service has recovered from a fault (see the module doc).
-spec recovered(fault(), map()) -> boolean().
recovered(#{scenario := S} = F, Ctx) ->
    Live = chaos_cluster:live(),
    Serving = Live -- outside(F),
    condition(S, F, Ctx, Serving) andalso probes_ok(Serving).

outside(#{scenario := node_kill, victim := V}) -> [V];
outside(#{scenario := network_partition, victim := {Min, _}}) -> Min;
outside(_) -> [].

condition(process_kill, #{victim := V}, #{children := N}, _) ->
    case chaos_cluster:call(V, supervisor, which_children, [jobs_worker_sup]) of
        Cs when is_list(Cs) -> length([P || {_, P, _, _} <- Cs, is_pid(P)]) =:= N;
        _ -> false
    end;
condition(network_partition, _, _, Serving) ->
    %% The majority side has quorum: every member of the membership in force there has it (a
    %% node the quorum removed earlier, not yet restored, has none and needs none).
    Statuses = [chaos_cluster:call(N, quorum_manager, get_quorum_status, []) || N <- Serving],
    Members = [N || {N, #{members := M}} <- lists:zip(Serving, Statuses), lists:member(N, M)],
    Members =/= [] andalso
        lists:all(fun({N, St}) -> not lists:member(N, Members) orelse maps:get(have_quorum, St, false) end,
                  lists:zip(Serving, Statuses));
condition(memory_pressure, #{victim := V}, _, _) ->
    chaos_cluster:call(V, chaos_hog, running, [memory]) =:= false;
condition(cpu_saturation, #{victim := V}, _, _) ->
    chaos_cluster:call(V, chaos_hog, running, [cpu]) =:= false;
condition(_, _, _, _) ->
    true.

%% One probe through every serving node, in parallel.
probes_ok(Nodes) ->
    Self = self(),
    Refs = [begin
                Ref = make_ref(),
                _ = spawn(fun() -> Self ! {Ref, catch erpc:call(N, jobs_example, probe, [?PROBE_MS], ?PROBE_MS + 500)} end),
                Ref
            end || N <- Nodes],
    Results = [receive {Ref, R} -> R after ?PROBE_MS + 1000 -> timeout end || Ref <- Refs],
    Nodes =/= [] andalso lists:all(fun(R) -> R =:= ok end, Results).
