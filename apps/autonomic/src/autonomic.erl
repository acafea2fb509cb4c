%%% @doc The public API of autonomic.
%%%
%%% Application code feeds its own signals into a per-tenant governor with {@link transition/2}
%%% and acts on the answer. A tenant's governor is created in `stable' on its first event and
%%% moves through `stable', `warn', `intervene', `degrade' and `refuse' following the table in
%%% DESIGN.md section 3 (also in `native/autonomic_core/src/governor.rs').
%%%
%%% ```
%%% 1> autonomic:transition(<<"acme">>, {signal, cpu, 92}).
%%% {ok,intervene,{throttle,50}}
%%% 2> autonomic:transition(<<"acme">>, action_succeeded).
%%% {ok,warn,none}
%%% '''
%%%
%%% The governors live in a NIF (one per tenant, sharded locks, a few hundred nanoseconds per
%%% call); bad input returns `{error, Reason}' and never changes any state.
%%%
%%% The node-wide fence ({@link set_fence/1}): while it is up, {@link transition/2} answers
%%% `{ok, refuse, {shed, 100}}' to every valid event without reaching the governor, so a node
%%% that must not act (the quorum manager raises it in a minority partition) sheds all work and
%%% leaves each tenant's governor state as it was. It is one atomic load per call, in the NIF,
%%% after the arguments are validated.
-module(autonomic).

-export([
    transition/2,
    governor_info/1,
    configure_governor/1,
    governor_thresholds/0,
    forget_tenant/1,
    tenant_count/0,
    tenants_by_state/0,
    feature_enabled/1
]).
-export([set_fence/1, fenced/0]).
%% The MAPE-K loop's human interface (application autonomic_loop; see autonomic_loop).
-export([cycles/1, pending_reviews/0, approve/1, reject/1, pause/1, resume/1]).

-export_type([
    tenant/0,
    governor_event/0,
    governor_state/0,
    governor_action/0,
    governor_info/0,
    governor_thresholds/0
]).


-type tenant() :: binary().
%% A tenant name: a binary of 1 to 256 bytes.

-type governor_event() ::
    {signal, Metric :: atom() | binary(), Value :: number()}
    | action_succeeded
    | action_failed
    | reset.
%% `Value' is a percentage in 0..100 (integer or float).

-type governor_state() :: stable | warn | intervene | degrade | refuse.

-type governor_action() :: none | {throttle, 0..100} | pause | {shed, 0..100}.

-type governor_info() :: #{
    state := governor_state(),
    consecutive_high := non_neg_integer(),
    time_in_state_ms := non_neg_integer(),
    transitions := non_neg_integer()
}.
%% `transitions' counts every event the governor accepted, self-loops included.

-type governor_thresholds() :: #{
    warn => number(),
    intervene => number(),
    recover => number(),
    calm => number(),
    refuse => number(),
    sustain => pos_integer()
}.

%% @doc Feeds one event into `Tenant''s governor and returns its new state and the action the
%% caller should take. While the node is fenced ({@link set_fence/1}) the answer to every
%% valid event is `{ok, refuse, {shed, 100}}': the governor is not consulted and nothing
%% changes. Bad input gets its error either way.
%%
%% Errors, none of which changes any state:
%% <ul>
%%   <li>`{error, invalid_tenant}': not a binary, empty, or over 256 bytes;</li>
%%   <li>`{error, {invalid_signal, Value}}': the value is not a number in 0..100;</li>
%%   <li>`{error, {unknown_event, Event}}': anything else that is not an event (including a
%%       metric that is neither an atom nor a binary).</li>
%% </ul>
-spec transition(tenant(), governor_event()) ->
    {ok, governor_state(), governor_action()}
    | {error, invalid_tenant | {invalid_signal, term()} | {unknown_event, term()}}.
transition(Tenant, Event) ->
    autonomic_nif:governor_transition(Tenant, Event).

%% @doc Returns a snapshot of `Tenant''s governor, or `{error, not_found}' when the tenant has
%% sent no event yet (or was forgotten).
-spec governor_info(tenant()) -> {ok, governor_info()} | {error, not_found | invalid_tenant}.
governor_info(Tenant) ->
    autonomic_nif:governor_info(Tenant).

%% @doc Changes the node's governor thresholds. The keys given are merged over the thresholds in
%% force; the result must satisfy `recover =< calm =< warn < intervene =< refuse', each in 0..100,
%% and `sustain >= 1'. On error nothing changes and the reason names the problem:
%% `not_a_map', `{unknown_key, K}', `{not_a_number, K, V}', `{invalid_sustain, V}',
%% `{out_of_range, K, V}' or `{order, Lower, Upper}' (Lower must not exceed Upper).
%% The new thresholds apply to the next event of every tenant.
-spec configure_governor(governor_thresholds()) -> ok | {error, {invalid_thresholds, term()}}.
configure_governor(Thresholds) ->
    autonomic_nif:governor_configure(Thresholds).

%% @doc Returns the thresholds in force on this node.
-spec governor_thresholds() -> governor_thresholds().
governor_thresholds() ->
    autonomic_nif:governor_thresholds().

%% @doc Drops `Tenant''s governor; its next event starts afresh in `stable'. Idempotent.
-spec forget_tenant(tenant()) -> ok | {error, invalid_tenant}.
forget_tenant(Tenant) ->
    autonomic_nif:governor_forget(Tenant).

%% @doc Returns the number of tenants that have a governor on this node.
-spec tenant_count() -> non_neg_integer().
tenant_count() ->
    autonomic_nif:governor_count().

%% @doc Returns how many of this node's tenants are in each governor state (every state is a
%% key). Walks all tenants on a dirty scheduler: meant for scrapes, not hot paths.
-spec tenants_by_state() -> #{governor_state() => non_neg_integer()}.
tenants_by_state() ->
    autonomic_nif:governor_state_counts().

%% @doc Raises (`true') or lowers (`false') this node's fence. While it is up, every valid
%% {@link transition/2} answers `{ok, refuse, {shed, 100}}' and no governor changes. Idempotent,
%% and an atomic store in the NIF: cheap at any rate.
-spec set_fence(boolean()) -> ok.
set_fence(Up) when is_boolean(Up) ->
    autonomic_nif:governor_set_fence(Up).

%% @doc Whether this node's fence is up.
-spec fenced() -> boolean().
fenced() ->
    autonomic_nif:governor_fenced().

%% @doc Whether the feature `Feature' is on at the node's degradation level in force: one ETS read
%% (`true' for a feature nobody registered, or while the Execute toolkit does not run). Features
%% are registered, with the levels in which they turn off, by `autonomic_degrade' (application
%% `autonomic_execute'), which owns this function's answer.
-spec feature_enabled(term()) -> boolean().
feature_enabled(Feature) ->
    autonomic_degrade:feature_enabled(Feature).

%%% The MAPE-K loop (application autonomic_loop)

%% @doc The last `N' cycles of the loop, oldest first: `#{detection_ms, analysis_ms,
%% planning_ms, execution_ms, total_ms, recovered, failures_handled, ...}' (see
%% `autonomic_loop:cycles/1'); `{error, no_coordinator}' when no coordinator runs.
-spec cycles(non_neg_integer()) -> [map()] | {error, term()}.
cycles(N) -> autonomic_loop:cycles(N).

%% @doc The operations paused for human review (low confidence, a failed safety gate, a
%% dependency conflict, or paused by {@link pause/1}).
-spec pending_reviews() -> [map()] | {error, term()}.
pending_reviews() -> autonomic_loop:pending_reviews().

%% @doc Approves a paused operation: it runs.
-spec approve(binary()) -> ok | {error, term()}.
approve(Id) -> autonomic_loop:approve(Id).

%% @doc Rejects a paused operation: it ends without acting (outcome `rejected').
-spec reject(binary()) -> ok | {error, term()}.
reject(Id) -> autonomic_loop:reject(Id).

%% @doc Pauses a running operation before its next step.
-spec pause(binary()) -> ok | {error, term()}.
pause(Id) -> autonomic_loop:pause(Id).

%% @doc Resumes a paused operation.
-spec resume(binary()) -> ok | {error, term()}.
resume(Id) -> autonomic_loop:resume(Id).
