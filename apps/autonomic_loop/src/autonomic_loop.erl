%%% @doc The public API of the MAPE-K loop: the services it may heal, and what the active
%%% coordinator is doing. The human review functions are also in {@link autonomic}
%%% (`autonomic:pending_reviews/0', `approve/1', `reject/1', `pause/1', `resume/1',
%%% `cycles/1'). Every function that asks the coordinator answers `{error, no_coordinator}' when
%%% there is none (no node has quorum, or an election is under way).
-module(autonomic_loop).

-export([register_service/2, unregister_service/1, services/0]).
-export([coordinator/0, operations/0, cycles/1, pending_reviews/0, approve/1, reject/1, pause/1, resume/1]).

%% @doc Registers a service of this node that the loop may heal (see
%% {@link autonomic_loop_services}): `#{supervisor := atom(), children => [term()],
%% depends_on => [atom()], backend => atom(), checks => [atom()], tenants => boolean(),
%% parent => atom()}'.
-spec register_service(atom(), map()) -> ok | {error, term()}.
register_service(Name, Spec) ->
    autonomic_loop_services:register_service(Name, Spec).

%% @doc Forgets a service of this node (idempotent).
-spec unregister_service(atom()) -> ok.
unregister_service(Name) ->
    autonomic_loop_services:unregister_service(Name).

%% @doc Every connected node's registered services: `[{Node, Name, Spec}]'.
-spec services() -> [{node(), atom(), map()}].
services() ->
    [{N, Name, Spec} || {N, Name, Spec, _Status} <- maps:get(services, autonomic_loop_cycle:snapshot())].

%% @doc The node of the active coordinator.
-spec coordinator() -> {ok, node()} | {error, no_coordinator}.
coordinator() ->
    case global:whereis_name(autonomic_coordinator) of
        undefined -> {error, no_coordinator};
        Pid -> {ok, node(Pid)}
    end.

%% @doc The operations not yet in a final state, oldest first:
%% `#{id, target, strategy, state, started_at}'.
-spec operations() -> [#{id := binary(), target := term(), strategy := atom(), state := atom(), started_at := integer()}] | {error, term()}.
operations() ->
    autonomic_coordinator:call(operations).

%% @doc The last `N' cycles, oldest first: `#{cycle, started_at, trigger, result, detection_ms,
%% detection_latency_ms, analysis_ms, planning_ms, gate_ms, execution_ms, verify_ms,
%% knowledge_ms, total_ms, recovered, failures_handled, operations}'.
-spec cycles(non_neg_integer()) -> [map()] | {error, term()}.
cycles(N) when is_integer(N), N >= 0 ->
    autonomic_coordinator:call({cycles, N});
cycles(N) ->
    {error, {invalid_count, N}}.

%% @doc The operations paused for human review, oldest first, with their incident, proposed
%% strategies and why they were paused.
-spec pending_reviews() -> [map()] | {error, term()}.
pending_reviews() ->
    autonomic_coordinator:call(pending_reviews).

%% @doc Approves an operation paused for review: it runs (without the gates: a human decided).
-spec approve(binary()) -> ok | {error, term()}.
approve(Id) -> human(approve, Id).

%% @doc Rejects an operation paused for review: it ends `failed' (outcome `rejected').
-spec reject(binary()) -> ok | {error, term()}.
reject(Id) -> human(reject, Id).

%% @doc Pauses an operation that has not acted yet (`init', `locked', `safety_check'): it stops
%% before acting and waits for {@link resume/1} or {@link approve/1} (or {@link reject/1}). An
%% operation executing or verifying is not paused (`{error, {invalid_state, State}}'): it
%% finishes or rolls back.
-spec pause(binary()) -> ok | {error, term()}.
pause(Id) -> human(pause, Id).

%% @doc Resumes a paused operation (like {@link approve/1}).
-spec resume(binary()) -> ok | {error, term()}.
resume(Id) -> human(resume, Id).

human(Decision, Id) when is_binary(Id) ->
    autonomic_coordinator:call({human, Decision, Id});
human(_Decision, Id) ->
    {error, {invalid_operation_id, Id}}.
