%%% @doc What an operation does on the cluster: the strategy for an incident, the concrete
%%% actions of each strategy, how recovery is verified, and how actions are rolled back.
%%%
%%% Actions run on the node of their target through the execute toolkit, so each writes its own
%%% `execute.<kind>' receipt there: `autonomic_actuator:execute/2' over `erpc' (restarts through
%%% `supervisor_controller', failovers, throttles, shedding, degradation), membership changes with
%%% `quorum_manager:propose_membership_change/3' (reason `node_loss': the node goes on standby
%%% and rejoins by itself once back), escalations with `autonomic_escalate'.
%%%
%%% | strategy | target | action | verified when | rollback |
%%% |---|---|---|---|---|
%%% | `supervisor_restart' | a service | its supervisor running: `cold' restart (through its parent; `full' for a top supervisor), or `quick' restarts of the spec's `children' when it names them; gone: restarted as a child of its `parent' (every worker new) | the supervisor runs with every child alive, the same processes 300 ms later | none (irreversible) |
%%% | `quorum_reconfiguration' | a node | the node removed from the membership onto standby, so it is restored when back (already removed by the quorum manager's own node-loss handling: nothing to do) | the node is no member and this node has quorum | none |
%%% | `backend_failover' | a backend of a node | failover from the active target to the next one not known to be down (with the spec's `target_checks'; nothing when the active target's check is up) | the active target's check is `up' (with `target_checks'), else every check of the service | failback (`autonomic_actuator:rollback/1') |
%%% | `graceful_degradation' | a backend, a resource | degradation level `degraded' on the node | a resource: the monitor's alarm for it is cleared; a backend: the action held | restore the level |
%%% | `load_shedding' | CPU of a node | shed `shed_percent' below priority 1 on the node | the monitor's CPU alarm is cleared | stop shedding |
%%% | `throttle', then `load_shedding' | a tenant | throttle the tenant by the policy's `throttle_percent'; not enough: shed `shed_percent' from its priority down | the tenant's governor is `stable' or `warn' | unthrottle, stop shedding |
%%% | `quorum_reconfiguration' | the cluster (a partition) | the members cut off removed | every member reachable, quorum held | none |
%%% | `escalate' | anything | `autonomic_escalate:escalate/3' | never: the operation ends `failed', a human told | none |
-module(autonomic_loop_act).

-export([strategies/2, generic_strategy/1, execute/3, verify/3, rollback/2, disrupted/2, reversible/1]).

-define(LOG, #{domain => [autonomic, loop]}).
%% A lost node is removed as the quorum manager's own failure handler removes one: it goes on
%% standby and is restored by the quorum manager once it is back (a manual removal would forget it).
-define(NODE_LOSS, #{reason => node_loss}).

%% @doc The strategies an operation runs for an incident, in order (a ladder: the next runs only
%% when the previous did not recover): the policy's recovery strategies for the failure type
%% that can act on the target, the planner's choice first when it is one of them.
-spec strategies(map(), {[atom()], atom() | undefined}) -> [atom()].
strategies(#{target := Target}, {Policy, Planned}) ->
    Supported = [S || S <- Policy, supports(S, Target)],
    %% Escalation is the last resort: the planner's choice of it (no feasible plan in the
    %% topology it was given) does not overrule a strategy that acts on the target.
    Ordered = case Planned =/= escalate andalso lists:member(Planned, Supported) of
        true -> [Planned | Supported -- [Planned]];
        false -> Supported
    end,
    case {Target, Ordered} of
        {_, []} -> [escalate];
        %% A tenant: throttle first, shed if throttling was not enough.
        {{tenant, _, _}, _} -> [S || S <- [throttle, load_shedding], lists:member(S, Ordered)] ++
                                   [hd(Ordered) || not lists:member(hd(Ordered), [throttle, load_shedding])];
        {_, [First | _]} -> [First]
    end.

%% @doc The strategy proposed to a human for an incident the loop is not sure of: the one that
%% acts on its kind of target.
-spec generic_strategy(autonomic_loop_op:target()) -> atom().
generic_strategy({service, _, _}) -> supervisor_restart;
generic_strategy({node, _}) -> quorum_reconfiguration;
generic_strategy({backend, _, _}) -> backend_failover;
generic_strategy({tenant, _, _}) -> throttle;
generic_strategy(_) -> escalate.

supports(supervisor_restart, {service, _, _}) -> true;
supports(quorum_reconfiguration, {node, _}) -> true;
supports(quorum_reconfiguration, {cluster}) -> true;
supports(backend_failover, {backend, _, _}) -> true;
supports(graceful_degradation, {backend, _, _}) -> true;
supports(graceful_degradation, {resource, _, _}) -> true;
supports(load_shedding, {resource, _, cpu}) -> true;
supports(throttle, {tenant, _, _}) -> true;
supports(load_shedding, {tenant, _, _}) -> true;
supports(escalate, _) -> true;
supports(_, _) -> false.

%% @doc How many running services a strategy disrupts (restarts), with the services depending on
%% them: for the blast-radius gate. A service that is already down is not disrupted by its
%% restart. `Services' is the snapshot `[{Node, Name, Spec, Status}]'.
-spec disrupted(map(), [{node(), atom(), map(), atom()}]) -> non_neg_integer().
disrupted(#{strategy := supervisor_restart, target := {service, N, S}}, Services) ->
    Affected = dependents([S], N, Services),
    length([1 || {Node, Name, _, up} <- Services, Node =:= N, lists:member(Name, Affected)]);
disrupted(_, _) ->
    0.

dependents(Names, N, Services) ->
    More = [Name || {Node, Name, Spec, _} <- Services, Node =:= N, not lists:member(Name, Names),
                    lists:any(fun(D) -> lists:member(D, Names) end, maps:get(depends_on, Spec, []))],
    case More of
        [] -> Names;
        _ -> dependents(lists:usort(Names ++ More), N, Services)
    end.

%% @doc Whether a strategy's action can be rolled back.
-spec reversible(atom()) -> boolean().
reversible(S) -> lists:member(S, [backend_failover, graceful_degradation, throttle, load_shedding]).

%% @doc Runs a strategy's action for an operation: `{ok, ActionRecord}' (what the journal keeps:
%% `#{kind, node, action, receipt, result}', `kind' the actuator's kind of action, `receipt' its
%% `execute.<kind>' receipt on `node') or `{error, Reason}'.
-spec execute(atom(), map(), map()) -> {ok, map()} | {error, term()}.
execute(supervisor_restart, #{target := {service, N, _}, spec := Spec} = Op, _Policy) ->
    Sup = maps:get(supervisor, Spec),
    case rpc(N, erlang, whereis, [Sup]) of
        {ok, Pid} when is_pid(Pid), is_list(map_get(children, Spec)) ->
            %% The service names the children the loop may restart: those, one by one.
            restart_children(N, Sup, maps:get(children, Spec), Op, []);
        {ok, Pid} when is_pid(Pid) ->
            case rpc(N, supervisor, which_children, [Sup]) of
                {ok, [_ | _] = Children} ->
                    {Id, _, _, _} = lists:last(Children),
                    case actuate(N, {restart, {Sup, N}, Id, cold}, Op) of
                        {error, {no_parent_supervisor, _}} -> actuate(N, {restart, {Sup, N}, Id, full}, Op);
                        Other -> Other
                    end;
                {ok, []} -> {error, {no_children, Sup}};
                Error -> Error
            end;
        {ok, undefined} ->
            case maps:get(parent, Spec, undefined) of
                undefined -> {error, {supervisor_down_without_parent, Sup}};
                Parent -> actuate(N, {restart, {Parent, N}, Sup, quick}, Op)
            end;
        Error ->
            Error
    end;
execute(supervisor_restart, _Op, _Policy) ->
    {error, service_unknown};
execute(quorum_reconfiguration, #{target := {node, P}}, _Policy) ->
    remove_member(P, 10);
execute(quorum_reconfiguration, #{target := {cluster}}, _Policy) ->
    %% A partition, seen from the coordinator's side (the side with quorum): the members cut off
    %% are removed (as many as is safe; the quorum manager refuses an unsafe removal).
    #{members := M, reachable := R} = quorum_manager:get_quorum_status(),
    case M -- R of
        [] -> {ok, #{kind => remove_node, node => node(), action => {remove_nodes, []}, receipt => undefined,
                     result => nothing_cut_off}};
        Lost -> remove_members(Lost, 10)
    end;
execute(backend_failover, #{target := {backend, N, B}} = Op, _Policy) ->
    case rpc(N, autonomic_backends, info, [B]) of
        {ok, {ok, #{active := Active, targets := Targets}}} ->
            %% With `target_checks', the state of each target is known: never move onto a target
            %% whose check is not up, and do nothing when the active one is up (someone, such as
            %% the application's own failover, already moved away from the failing one).
            Health = target_health(N, maps:get(spec, Op, #{})),
            case {Health(Active), [T || T <- Targets, T =/= Active, Health(T) =/= down]} of
                {up, _} ->
                    {ok, #{kind => failover, node => N, action => {failover, B, Active, Active},
                           receipt => undefined, result => {already_on_healthy_target, Active}}};
                {_, [To | _]} -> actuate(N, {failover, B, Active, To}, Op);
                {_, []} -> {error, {no_healthy_target, B}}
            end;
        {ok, {error, not_found}} -> {error, {unknown_backend, B}};
        Error -> Error
    end;
execute(graceful_degradation, #{target := Target} = Op, _Policy) ->
    actuate(element(2, Target), {degrade, degraded}, Op);
execute(throttle, #{target := {tenant, N, T}} = Op, Policy) ->
    Pct = maps:get(throttle_percent, maps:get(planner, Policy, #{}), 50),
    actuate(N, {throttle, T, Pct}, Op);
execute(load_shedding, #{target := {resource, N, _}} = Op, Policy) ->
    %% A saturated node: shed its lowest priority first (below 1: requests of tenants without
    %% entitlements, and background work).
    Pct = maps:get(shed_percent, maps:get(planner, Policy, #{}), 25),
    actuate(N, {shed, Pct, 1}, Op);
execute(load_shedding, #{target := {tenant, N, T}} = Op, Policy) ->
    Pct = maps:get(shed_percent, maps:get(planner, Policy, #{}), 25),
    case rpc(N, autonomic_actuator, from_governor, [T, {shed, Pct}]) of
        {ok, {ok, Action}} -> actuate(N, Action, Op);
        {ok, Other} -> {error, Other};
        Error -> Error
    end;
execute(escalate, #{id := Id, incident := Incident} = Op, _Policy) ->
    Summary = io_lib:format("autonomic loop: ~p on ~p needs a human", [maps:get(failure_type, Incident), maps:get(target, Op)]),
    Result = autonomic_escalate:escalate(warning, Summary, #{operation => Id, incident => maps:get(id, Incident)}),
    {ok, #{kind => escalate, node => node(), action => escalate, receipt => undefined, result => Result}};
execute(Strategy, #{target := Target}, _Policy) ->
    {error, {unsupported, Strategy, Target}}.

restart_children(N, Sup, [], _Op, Receipts) ->
    {ok, #{kind => restart, node => N, action => {restart_children, {Sup, N}, [C || {C, _} <- lists:reverse(Receipts)]},
           receipt => element(2, hd(Receipts)), result => #{receipts => lists:reverse(Receipts)}}};
restart_children(N, Sup, [Child | Rest], Op, Receipts) ->
    case actuate(N, {restart, {Sup, N}, Child, quick}, Op) of
        {ok, #{receipt := R}} -> restart_children(N, Sup, Rest, Op, [{Child, R} | Receipts]);
        {error, _} = Error -> Error
    end.

actuate(Node, Action, #{id := Id}) ->
    Reason = <<"loop operation ", Id/binary>>,
    case rpc(Node, autonomic_actuator, execute, [Action, #{reason => Reason}]) of
        {ok, {ok, #{receipt := Receipt} = Summary}} ->
            {ok, #{kind => element(1, Action), node => Node, action => Action, receipt => Receipt,
                   result => maps:without([receipt], Summary)}};
        {ok, {error, _} = Error} -> Error;
        Error -> Error
    end.

remove_member(P, Tries) ->
    Status = quorum_manager:get_quorum_status(),
    case lists:member(P, maps:get(members, Status)) of
        false ->
            {ok, #{kind => remove_node, node => node(), action => {remove_node, P}, receipt => undefined,
                   result => {already_removed, maps:get(epoch, Status)}}};
        true ->
            case quorum_manager:propose_membership_change([], [P], ?NODE_LOSS) of
                {ok, Epoch} ->
                    {ok, #{kind => remove_node, node => node(), action => {remove_node, P},
                           receipt => undefined, result => {removed, Epoch}}};
                {error, Why} when Tries > 0, (Why =:= change_in_progress orelse Why =:= no_quorum orelse
                                              element(1, Why) =:= outcome_unknown) ->
                    %% The quorum manager's own node-loss handling may be removing it right now.
                    timer:sleep(300),
                    remove_member(P, Tries - 1);
                {error, _} = Error ->
                    Error
            end
    end.

remove_members(Lost, Tries) ->
    case quorum_manager:propose_membership_change([], Lost, ?NODE_LOSS) of
        {ok, Epoch} ->
            {ok, #{kind => remove_node, node => node(), action => {remove_nodes, Lost}, receipt => undefined,
                   result => {removed, Epoch}}};
        {error, {unknown_node, _}} ->
            %% Removed meanwhile by the quorum manager's own handling.
            {ok, #{kind => remove_node, node => node(), action => {remove_nodes, Lost}, receipt => undefined,
                   result => already_removed}};
        {error, change_in_progress} when Tries > 0 ->
            timer:sleep(300),
            remove_members(Lost, Tries - 1);
        {error, _} = Error ->
            Error
    end.

%% @doc Whether the incident's symptoms are gone after a strategy's action: polls until
%% recovered or until `Deadline' (monotonic ms) passes.
-spec verify(atom(), map(), integer()) -> boolean().
verify(Strategy, Op, Deadline) ->
    case check(Strategy, Op) of
        true -> true;
        false ->
            case erlang:monotonic_time(millisecond) >= Deadline of
                true -> false;
                false -> timer:sleep(100), verify(Strategy, Op, Deadline)
            end
    end.

check(supervisor_restart, #{target := {service, N, _}, spec := #{supervisor := Sup}}) ->
    Sample = fun() ->
                     case {rpc(N, erlang, whereis, [Sup]), rpc(N, supervisor, which_children, [Sup])} of
                         {{ok, SupPid}, {ok, Children}} when is_pid(SupPid), is_list(Children) ->
                             Pids = [P || {_, P, _, _} <- Children],
                             case lists:all(fun is_pid/1, Pids) of
                                 true -> {SupPid, Pids};
                                 false -> false
                             end;
                         _ -> false
                     end
             end,
    %% The same supervisor and the same children twice, 300 ms apart: a worker that crashes again
    %% and is restarted by its supervisor meanwhile is not a recovery.
    case Sample() of
        false -> false;
        First -> timer:sleep(300), Sample() =:= First
    end;
check(quorum_reconfiguration, #{target := {cluster}}) ->
    case quorum_manager:get_quorum_status() of
        #{members := M, reachable := R, have_quorum := true} -> M -- R =:= [];
        _ -> false
    end;
check(quorum_reconfiguration, #{target := {node, P}}) ->
    case quorum_manager:get_quorum_status() of
        #{members := M, have_quorum := true} -> not lists:member(P, M);
        _ -> false
    end;
check(backend_failover, #{target := {backend, N, B}, spec := #{target_checks := TC} = Spec}) when map_size(TC) > 0 ->
    %% Recovered when the target now active is healthy (the one failed away from may stay down).
    case rpc(N, autonomic_backends, target, [B]) of
        {ok, {ok, Active}} -> (target_health(N, Spec))(Active) =:= up;
        _ -> false
    end;
check(backend_failover, #{target := {backend, N, _}, spec := Spec}) ->
    case rpc(N, mape_k_checks, status, []) of
        {ok, Status} when is_map(Status) ->
            lists:all(fun(C) -> maps:get(state, maps:get(C, Status, #{}), up) =:= up end, maps:get(checks, Spec, []));
        _ -> false
    end;
check(S, #{target := {tenant, N, T}}) when S =:= throttle; S =:= load_shedding ->
    case rpc(N, autonomic, governor_info, [T]) of
        {ok, {ok, #{state := State}}} -> lists:member(State, [stable, warn]);
        {ok, {error, not_found}} -> true;
        _ -> false
    end;
check(S, #{target := {resource, N, R}}) when S =:= graceful_degradation; S =:= load_shedding ->
    %% The monitor clears its alarm once the resource is back under its threshold.
    case rpc(N, alarm_handler, get_alarms, []) of
        {ok, Alarms} when is_list(Alarms) -> not lists:any(fun({Id, _}) -> Id =:= {autonomic_resource_exhausted, R} end, Alarms);
        _ -> false
    end;
check(graceful_degradation, _) -> true;
%% Telling a human recovers nothing: an escalation ends `failed' (the human was told).
check(escalate, _) -> false;
check(_, _) -> false.

%% @doc Rolls back the actions an operation executed, last first; returns what happened to each
%% (`{ok, RollbackReceipt}', `irreversible', `{error, Reason}').
%% `fun(Target) -> up | down | unknown': the state of the check `target_checks' names for a
%% backend target, on node `N' (`unknown' without a check or without an answer).
target_health(N, Spec) ->
    TC = maps:get(target_checks, Spec, #{}),
    Status = case map_size(TC) > 0 andalso rpc(N, mape_k_checks, status, []) of
        {ok, S} when is_map(S) -> S;
        _ -> #{}
    end,
    fun(T) ->
        case maps:find(T, TC) of
            {ok, C} ->
                case maps:get(C, Status, undefined) of
                    #{state := up} -> up;
                    #{state := down} -> down;
                    _ -> unknown
                end;
            error -> unknown
        end
    end.

-spec rollback([map()], map()) -> [{map(), term()}].
rollback(Actions, _Op) ->
    [{A, undo(A)} || A <- lists:reverse(Actions)].

undo(#{node := N, receipt := Receipt, action := Action}) when is_binary(Receipt) ->
    case autonomic_actuator:reversible(Action) of
        true ->
            case rpc(N, autonomic_actuator, rollback, [Receipt]) of
                {ok, {ok, #{receipt := R}}} -> {ok, R};
                {ok, {error, {already_rolled_back, R}}} -> {ok, R};
                {ok, Other} -> Other;
                Error -> Error
            end;
        false -> irreversible
    end;
undo(_) ->
    irreversible.

%% A remote call that never raises: `{ok, Result}' or `{error, {rpc, Node, Why}}'.
rpc(Node, M, F, A) ->
    Timeout = application:get_env(autonomic_loop, rpc_timeout_ms, 5000),
    try {ok, erpc:call(Node, M, F, A, Timeout + 30000)}
    catch
        Class:Why ->
            %% Debug: verification polls fail this way until the service is back; a failed
            %% action is logged by the operation with its reason.
            logger:debug("loop: ~p:~p on ~p failed: ~p:~p", [M, F, Node, Class, Why], ?LOG),
            {error, {rpc, Node, Why}}
    end.
