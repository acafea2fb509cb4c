%%% @doc The operation state machine, pure: its 9 states, which moves are allowed, the locks an
%%% operation takes (in the fixed order), and dependency-aware conflicts between operations.
%%%
%%% ```
%%% init -> locked -> safety_check -> in_progress -> verifying -> completed
%%%   |        |            |              |             |-> in_progress (the next rung of a ladder:
%%%   |        |            |              |             |   throttle, then shed)
%%%   |        |            |              +-------------+-> rolled_back | failed
%%%   +--------+------------+-> paused_for_human_review -> locked (approved, resumed) | failed (rejected)
%%% '''
%%% `init', `locked' and `safety_check' may also end in `rolled_back' (nothing was done: the
%%% cycle was aborted, the coordinator lost quorum) or `failed'. The final states are
%%% `completed', `rolled_back' and `failed'.
-module(autonomic_loop_op).

-export([states/0, final/1, transition/2, lock_keys/1, lock_rank/1, conflicts/2]).

-export_type([state/0, target/0]).

-type state() :: init | locked | safety_check | in_progress | verifying | completed | rolled_back
               | failed | paused_for_human_review.
-type target() :: {service, node(), atom()} | {node, node()} | {backend, node(), atom()}
                | {tenant, node(), binary()} | {resource, node(), atom()} | {cluster}.

%% @doc The nine states.
-spec states() -> [state()].
states() ->
    [init, locked, safety_check, in_progress, verifying, completed, rolled_back, failed, paused_for_human_review].

%% @doc Whether a state is final.
-spec final(state()) -> boolean().
final(S) -> lists:member(S, [completed, rolled_back, failed]).

%% @doc `{ok, To}' when an operation in `From' may move to `To', else
%% `{error, {invalid_transition, From, To}}'.
-spec transition(state(), state()) -> {ok, state()} | {error, {invalid_transition, term(), term()}}.
transition(From, To) ->
    case lists:member(To, allowed(From)) of
        true -> {ok, To};
        false -> {error, {invalid_transition, From, To}}
    end.

allowed(init) -> [locked, paused_for_human_review, rolled_back, failed];
allowed(locked) -> [safety_check, paused_for_human_review, rolled_back, failed];
allowed(safety_check) -> [in_progress, paused_for_human_review, rolled_back, failed];
allowed(in_progress) -> [verifying, rolled_back, failed];
allowed(verifying) -> [completed, in_progress, rolled_back, failed];
allowed(paused_for_human_review) -> [locked, failed, rolled_back];
allowed(_Final) -> [].

%% @doc The locks an operation takes, in the order they must be taken: system, then service,
%% then incident, then deployment (a fixed order, so two operations never wait for each other
%% in a cycle). Cluster-wide actions (a membership change, node-wide shedding) take the system
%% lock of their kind; an operation on anything that belongs to a service takes the service
%% lock; every operation takes its target's incident lock; a failover takes the deployment lock
%% of its backend.
-spec lock_keys(#{target := target(), strategy := atom(), atom() => term()}) -> [{atom(), term()}].
lock_keys(#{target := Target, strategy := Strategy} = Op) ->
    System = case Strategy of
        quorum_reconfiguration -> [{system, membership}];
        load_shedding -> [{system, {shedding, target_node(Target)}}];
        _ -> []
    end,
    Service = case maps:get(service, Op, undefined) of
        undefined -> [];
        Name -> [{service, {target_node(Target), Name}}]
    end,
    Deployment = case Target of
        {backend, N, B} -> [{deployment, {N, B}}];
        _ -> []
    end,
    Keys = System ++ Service ++ [{incident, Target}] ++ Deployment,
    lists:sort(fun(A, B) -> {lock_rank(element(1, A)), A} =< {lock_rank(element(1, B)), B} end, lists:usort(Keys)).

%% @doc The place of a lock kind in the order.
-spec lock_rank(atom()) -> 1..4.
lock_rank(system) -> 1;
lock_rank(service) -> 2;
lock_rank(incident) -> 3;
lock_rank(deployment) -> 4.

target_node({_, N, _}) -> N;
target_node({node, N}) -> N;
target_node({cluster}) -> cluster.

%% @doc The operations of `Running' that an operation `Op' on a service conflicts with: those on
%% a service it depends on or that depends on it (on the same node), whatever their target.
%% Each operation is `#{id, service => Name, node => Node, depends_on => [Name]}'.
-spec conflicts(map(), [map()]) -> [term()].
conflicts(Op, Running) ->
    case maps:get(service, Op, undefined) of
        undefined -> [];
        S ->
            Node = maps:get(node, Op, undefined),
            Deps = maps:get(depends_on, Op, []),
            [maps:get(id, R) || R <- Running,
                                maps:get(id, R) =/= maps:get(id, Op),
                                maps:get(node, R, undefined) =:= Node,
                                begin
                                    RS = maps:get(service, R, undefined),
                                    RS =/= undefined andalso RS =/= S andalso
                                        (lists:member(RS, Deps) orelse lists:member(S, maps:get(depends_on, R, [])))
                                end]
    end.
