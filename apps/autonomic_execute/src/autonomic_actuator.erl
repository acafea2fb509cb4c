%%% @doc The actuator: executes the actions the loop (or an operator) decides, writes a receipt of
%%% each to the ledger, and rolls reversible ones back.
%%%
%%% ```
%%% 1> {ok, #{receipt := Id}} = autonomic_actuator:execute({throttle, <<"acme">>, 50}).
%%% 2> autonomic_actuator:active().
%%% [#{receipt => Id, action => {throttle,<<"acme">>,50}, previous => 0, new => 50, at => ...}]
%%% 3> autonomic_actuator:rollback(Id).
%%% {ok,#{receipt => <<"0190...">>, kind => rollback, rollback_of => Id, restored => 0, ...}}
%%% '''
%%%
%%% Actions (validated first; an invalid one returns `{error, Reason}' and writes nothing):
%%%
%%% | action | does | reversible |
%%% |---|---|---|
%%% | `{throttle, Tenant, Pct}' | `autonomic_bucket:throttle(Tenant, Pct)', Pct 0..100 | yes |
%%% | `{pause, Tenant}' | `autonomic_bucket:pause(Tenant)' | yes |
%%% | `{shed, Pct, PriorityBelow}' | `autonomic_shed:set(Pct, PriorityBelow)' | yes |
%%% | `{degrade, Level}' | `autonomic_degrade:set_level(Level)' (the manual level) | yes |
%%% | `{failover, Backend, From, To}' | `autonomic_backends:failover(Backend, From, To)' | yes |
%%% | `{restart, SupRef, ChildId, Type}' | `supervisor_controller:restart_child/4' | no |
%%%
%%% Each action runs with a timeout (option `timeout', default `action_timeout_ms', 30 s) and
%%% then writes one receipt ({@link autonomic_receipt}: ledger action `execute.<kind>', detail
%%% `#{kind, action, outcome, previous, new, replaced_receipt, reversible, elapsed_us, node, at,
%%% reason}'): what was done, what it replaced (the setting before, and the receipt of the
%%% action that had set it, or `none'), and how it ended. Failed actions get a receipt too (with
%%% `outcome => {error, Reason}') and are escalated ({@link autonomic_escalate}) unless
%%% `escalate_failed_actions' is false. A reversible action whose receipt cannot be written is
%%% undone: no action stays in force without its receipt. (One case is left open: a reversible
%%% action whose setting's owner does not answer within the timeout is receipted as
%%% `{error, timeout}', but the owner may still apply it when it gets to the request, and the
%%% setting then holds a value no action in force set. Those owners answer in microseconds, so
%%% it takes an owner that is stuck; the escalation of the failed action reports it.)
%%%
%%% Rollback model: every setting an action changes (a slot: a tenant's throttle, a tenant's
%%% pause, the shedding, the manual degradation level, a backend's active target) keeps a stack
%%% of the actions that set it ({@link autonomic_actuator_store}). {@link rollback/1} undoes the
%%% latest action on its slot, restoring exactly the value that action replaced (read from its
%%% receipt), and writes a receipt of its own (`execute.rollback', detail `#{rollback_of,
%%% rolled_back, restored, replaced}'); the action below it on the stack is then in force again
%%% and can be rolled back in turn. A rollback is refused, changing nothing, when the action is
%%% not the latest on its setting (`{superseded, LaterReceiptId}'), when the setting was changed
%%% since by something other than the actuator (`{superseded, {changed_to, Value}}': restoring
%%% would silently undo that change), when it was rolled back already
%%% (`{already_rolled_back, RollbackReceiptId}'), when it failed (`{not_in_force, Id}'), and for
%%% restarts and rollbacks (`{irreversible, Kind}': a restart cannot be undone; a rollback is
%%% undone by executing the action again). {@link active/0} lists the actions in force: the
%%% latest of each slot, while the setting still holds the value it set.
%%%
%%% Reversible actions and rollbacks run one at a time in this process, so they never race each
%%% other; restarts run in their own processes (they take milliseconds to seconds, and
%%% `supervisor_controller' serializes them per supervisor).
-module(autonomic_actuator).
-behaviour(gen_server).

-export([start_link/0]).
-export([execute/1, execute/2, rollback/1, active/0, receipt/1, validate/1, reversible/1, from_governor/2]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-export_type([action/0, summary/0]).

-define(LOG, #{domain => [autonomic, execute]}).
-define(STORE, autonomic_actuator_store).

-type action() ::
    {throttle, autonomic:tenant(), 0..100}
    | {pause, autonomic:tenant()}
    | {shed, 0..100, integer()}
    | {degrade, autonomic_degrade:level()}
    | {failover, autonomic_backends:backend(), term(), term()}
    | {restart, supervisor_controller:sup_ref(), term(), supervisor_controller:restart_type()}.

-type summary() :: #{receipt := binary(), seq := non_neg_integer(), kind := atom(), atom() => term()}.
%% The receipt's id and seq, and its detail (without `v', `node' and `at').

-type options() :: #{timeout => pos_integer(), reason => iodata()}.

%%% API

%% @doc Starts the actuator (from `autonomic_actuation_sup').
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Executes `Action' with the default timeout; see {@link execute/2}.
-spec execute(action()) -> {ok, summary()} | {error, term()}.
execute(Action) ->
    execute(Action, #{}).

%% @doc Executes `Action' and writes its receipt. `Opts': `timeout' (ms) and `reason' (text kept
%% in the receipt: why the action was taken).
-spec execute(action(), options()) -> {ok, summary()} | {error, term()}.
execute(Action, Opts) ->
    case {validate(Action), options(Opts)} of
        {ok, {ok, Timeout, Reason}} ->
            gen_server:call(?MODULE, {execute, Action, Timeout, Reason}, Timeout + 30000);
        {{error, _} = Error, _} ->
            Error;
        {_, {error, _} = Error} ->
            Error
    end.

%% @doc Undoes the reversible action of receipt `ReceiptId' (see the module doc) and writes a
%% receipt of the rollback.
-spec rollback(binary()) -> {ok, summary()} | {error, term()}.
rollback(ReceiptId) when is_binary(ReceiptId) ->
    gen_server:call(?MODULE, {rollback, ReceiptId}, autonomic_execute_config:get(action_timeout_ms) + 30000);
rollback(ReceiptId) ->
    {error, {invalid_receipt_id, ReceiptId}}.

%% @doc The actions in force, oldest first: `#{receipt, action, previous, new, at}' (`at' in
%% microseconds since the epoch).
-spec active() -> [#{receipt := binary(), action := action(), previous := term(), new := term(), at := integer()}].
active() ->
    InForce = [E || {Slot, [#{new := New} = E | _]} <- ?STORE:slots(), current(Slot) =:= {ok, New}],
    lists:sort(fun(#{at := A}, #{at := B}) -> A =< B end, InForce).

%% @doc A receipt of the actuator read back from the ledger, its detail decoded.
-spec receipt(binary()) -> {ok, #{id := binary(), seq := non_neg_integer(), timestamp := integer(),
                                  kind := atom(), detail := map()}} | {error, term()}.
receipt(Id) ->
    case autonomic_ledger:get(Id) of
        {ok, #{action := A, result := R, seq := Seq, timestamp := Ts}} ->
            case {autonomic_receipt:kind(A), autonomic_receipt:decode(R)} of
                {undefined, _} -> {error, {not_an_actuator_receipt, Id}};
                {_, {error, _}} -> {error, {not_an_actuator_receipt, Id}};
                {Kind, {ok, Detail}} -> {ok, #{id => Id, seq => Seq, timestamp => Ts, kind => Kind, detail => Detail}}
            end;
        {error, _} = Error ->
            Error
    end.

%% @doc Checks an action: its shape, percentages (integers 0..100), levels, backends and targets.
-spec validate(term()) -> ok | {error, term()}.
validate({throttle, Tenant, Pct}) ->
    first([tenant(Tenant), percent(Pct)]);
validate({pause, Tenant}) ->
    tenant(Tenant);
validate({shed, Pct, Below}) ->
    first([percent(Pct), case is_integer(Below) of true -> ok; false -> {error, {invalid_priority, Below}} end]);
validate({degrade, Level}) ->
    case autonomic_degrade_rules:valid_level(Level) of
        true -> ok;
        false -> {error, {invalid_level, Level}}
    end;
validate({failover, Backend, From, To}) ->
    case autonomic_backends:info(Backend) of
        {ok, #{targets := Targets}} ->
            case {lists:member(From, Targets), lists:member(To, Targets), From =:= To} of
                {false, _, _} -> {error, {unknown_target, From}};
                {_, false, _} -> {error, {unknown_target, To}};
                {_, _, true} -> {error, {same_target, To}};
                _ -> ok
            end;
        {error, not_found} ->
            {error, {unknown_backend, Backend}}
    end;
validate({restart, SupRef, _ChildId, Type}) ->
    SupOk = case SupRef of
        A when is_atom(A) -> true;
        P when is_pid(P) -> true;
        {N, Node} -> is_atom(N) andalso is_atom(Node);
        _ -> false
    end,
    case {SupOk, lists:member(Type, [quick, full, cold])} of
        {false, _} -> {error, {invalid_supref, SupRef}};
        {_, false} -> {error, {invalid_restart_type, Type}};
        _ -> ok
    end;
validate(Action) ->
    {error, {unknown_action, Action}}.

%% @doc Whether an action (or a kind) can be rolled back.
-spec reversible(action() | atom()) -> boolean().
reversible(Action) when is_tuple(Action) -> reversible(element(1, Action));
reversible(Kind) -> lists:member(Kind, [throttle, pause, shed, degrade, failover]).

%% @doc The actuator action that enforces a governor action for `Tenant' (`autonomic:transition/2'
%% answers), or `none'. `{shed, Pct}' sheds `Pct' percent from the requests below the priority
%% just above the tenant's SKU ({@link autonomic_entitlements}; 0 without entitlements), so the
%% tenant's tier and those under it go first.
-spec from_governor(autonomic:tenant(), autonomic:governor_action()) -> {ok, action()} | none | {error, term()}.
from_governor(_Tenant, none) ->
    none;
from_governor(Tenant, Action) ->
    Mapped = case Action of
        {throttle, Pct} -> {ok, {throttle, Tenant, Pct}};
        pause -> {ok, {pause, Tenant}};
        {shed, Pct} ->
            Priority = case autonomic_entitlements:info(Tenant) of
                {ok, #{limits := #{priority := P}}} -> P;
                _ -> 0
            end,
            {ok, {shed, Pct, Priority + 1}};
        _ -> {error, {unknown_governor_action, Action}}
    end,
    case Mapped of
        {ok, A} ->
            case validate(A) of
                ok -> Mapped;
                {error, _} = Error -> Error
            end;
        Error ->
            Error
    end.

%%% gen_server

%% @private
-spec init([]) -> {ok, #{}}.
init([]) ->
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()} | {noreply, map()}.
handle_call({execute, {restart, _, _, _} = Action, Timeout, Reason}, From, S) ->
    %% In a process of its own: restarts take time and are serialized per supervisor by
    %% supervisor_controller, not here.
    _ = spawn(fun() -> gen_server:reply(From, restart(Action, Timeout, Reason)) end),
    {noreply, S};
handle_call({execute, Action, Timeout, Reason}, _From, S) ->
    {reply, change(Action, Timeout, Reason), S};
handle_call({rollback, Id}, _From, S) ->
    {reply, do_rollback(Id), S};
handle_call(_Req, _From, S) ->
    {reply, {error, unknown_call}, S}.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) ->
    {noreply, S}.

%% @private
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(_Msg, S) ->
    {noreply, S}.

%%% Reversible actions

change(Action, Timeout, Reason) ->
    Kind = element(1, Action),
    Slot = slot(Action),
    Replaced = case ?STORE:top(Slot) of
        {ok, #{receipt := R}} -> R;
        none -> none
    end,
    T0 = erlang:monotonic_time(microsecond),
    {Outcome, Previous, New} = case with_timeout(fun() -> apply_action(Action) end, Timeout) of
        {ok, {ok, Prev}} -> {ok, Prev, new_value(Action)};
        {ok, {error, Why}} -> {{error, Why}, undefined, undefined};
        {error, Why} -> {{error, Why}, undefined, undefined}
    end,
    Detail = #{kind => Kind, action => Action, outcome => Outcome, previous => Previous, new => New,
               replaced_receipt => Replaced, reversible => true,
               elapsed_us => erlang:monotonic_time(microsecond) - T0, reason => Reason},
    case append(Kind, Detail) of
        {ok, Summary} ->
            case Outcome of
                ok -> ok = ?STORE:push(Slot, #{receipt => maps:get(receipt, Summary), action => Action,
                                                previous => Previous, new => New, at => now_us()});
                _ -> ok
            end,
            outcome(Kind, Outcome, Summary);
        {error, LedgerError} when Outcome =:= ok ->
            %% No action stays in force without its receipt.
            _ = restore(Slot, Previous, New),
            logger:error("actuator: ~0p undone: its receipt could not be written (~0p)", [Action, LedgerError], ?LOG),
            {error, {ledger, LedgerError}};
        {error, LedgerError} ->
            {error, {ledger, LedgerError}}
    end.

apply_action({throttle, Tenant, Pct}) -> autonomic_bucket:throttle(Tenant, Pct);
apply_action({pause, Tenant}) -> autonomic_bucket:set_paused(Tenant, true);
apply_action({shed, Pct, Below}) -> autonomic_shed:set(Pct, Below);
apply_action({degrade, Level}) -> autonomic_degrade:set_level(Level);
apply_action({failover, Backend, From, To}) -> autonomic_backends:failover(Backend, From, To).

new_value({throttle, _, Pct}) -> Pct;
new_value({pause, _}) -> true;
new_value({shed, Pct, Below}) -> {Pct, Below};
new_value({degrade, Level}) -> Level;
new_value({failover, _, _, To}) -> To.

slot({throttle, Tenant, _}) -> {throttle, Tenant};
slot({pause, Tenant}) -> {pause, Tenant};
slot({shed, _, _}) -> shed;
slot({degrade, _}) -> degrade;
slot({failover, Backend, _, _}) -> {backend, Backend}.

%% The value a slot holds now.
current({throttle, Tenant}) -> {ok, element(1, autonomic_bucket:controls(Tenant))};
current({pause, Tenant}) -> {ok, element(2, autonomic_bucket:controls(Tenant))};
current(shed) -> {ok, autonomic_shed:get()};
current(degrade) -> {ok, autonomic_degrade:manual_level()};
current({backend, Backend}) -> autonomic_backends:target(Backend).

%% Puts Value back into Slot, which holds Current.
restore({throttle, Tenant}, Value, _Current) -> autonomic_bucket:throttle(Tenant, Value);
restore({pause, Tenant}, Value, _Current) -> autonomic_bucket:set_paused(Tenant, Value);
restore(shed, off, _Current) -> autonomic_shed:clear();
restore(shed, {Pct, Below}, _Current) -> autonomic_shed:set(Pct, Below);
restore(degrade, Level, _Current) -> autonomic_degrade:set_level(Level);
restore({backend, Backend}, Value, Current) -> autonomic_backends:failover(Backend, Current, Value).

%%% Rollback

do_rollback(Id) ->
    case receipt(Id) of
        {ok, #{kind := Kind}} when Kind =:= restart; Kind =:= rollback ->
            {error, {irreversible, Kind}};
        {ok, #{detail := #{outcome := Outcome}}} when Outcome =/= ok ->
            {error, {not_in_force, Id}};
        {ok, #{kind := Kind, detail := #{action := Action, previous := Previous, new := New}}} ->
            Slot = slot(Action),
            case {?STORE:slot_of(Id), ?STORE:top(Slot), current(Slot)} of
                {none, _, _} ->
                    case rolled_back_by(Id) of
                        {ok, RbId} -> {error, {already_rolled_back, RbId}};
                        none -> {error, {not_in_force, Id}}
                    end;
                {{ok, Slot}, {ok, #{receipt := Top}}, _} when Top =/= Id ->
                    {error, {superseded, Top}};
                {{ok, Slot}, _, {ok, New}} ->
                    undo(Id, Kind, Action, Slot, Previous, New);
                {{ok, Slot}, _, {ok, Other}} ->
                    {error, {superseded, {changed_to, Other}}};
                {{ok, Slot}, _, {error, Why}} ->
                    {error, {superseded, Why}}
            end;
        {error, {not_an_actuator_receipt, _}} = Error ->
            Error;
        {error, not_found} ->
            {error, not_found};
        {error, Why} ->
            {error, Why}
    end.

undo(Id, Kind, Action, Slot, Previous, New) ->
    T0 = erlang:monotonic_time(microsecond),
    Timeout = autonomic_execute_config:get(action_timeout_ms),
    case with_timeout(fun() -> restore(Slot, Previous, New) end, Timeout) of
        {ok, {ok, _}} ->
            Detail = #{kind => rollback, rollback_of => Id, rolled_back => Action, restored => Previous,
                       replaced => New, outcome => ok, reversible => false,
                       elapsed_us => erlang:monotonic_time(microsecond) - T0},
            case append(rollback, Detail) of
                {ok, Summary} ->
                    ok = ?STORE:pop(Slot),
                    _ = autonomic_events:publish(action_rolled_back,
                                                 #{receipt => Id, kind => Kind, rollback_receipt => maps:get(receipt, Summary)}),
                    ok = autonomic_metrics:inc(autonomic_rollbacks_total, #{kind => Kind, outcome => ok}),
                    logger:notice("actuator: ~0p rolled back (receipt ~s), ~0p restored", [Action, Id, Previous], ?LOG),
                    {ok, Summary};
                {error, LedgerError} ->
                    %% The rollback is undone in turn: the action stays in force, as its record says.
                    _ = restore(Slot, New, Previous),
                    {error, {ledger, LedgerError}}
            end;
        {ok, {error, Why}} ->
            ok = autonomic_metrics:inc(autonomic_rollbacks_total, #{kind => Kind, outcome => error}),
            {error, Why};
        {error, Why} ->
            ok = autonomic_metrics:inc(autonomic_rollbacks_total, #{kind => Kind, outcome => error}),
            {error, Why}
    end.

%% The rollback receipt naming Id, if there is one.
rolled_back_by(Id) ->
    case autonomic_ledger:by_action(autonomic_receipt:action(rollback)) of
        {ok, Receipts} ->
            case [R || #{id := R, result := Bin} <- Receipts,
                       {ok, #{rollback_of := Of}} <- [autonomic_receipt:decode(Bin)], Of =:= Id] of
                [RbId | _] -> {ok, RbId};
                [] -> none
            end;
        {error, _} ->
            none
    end.

%%% Restarts

restart({restart, SupRef, ChildId, Type} = Action, Timeout, Reason) ->
    T0 = erlang:monotonic_time(microsecond),
    Result = try
        supervisor_controller:restart_child(SupRef, ChildId, Type, #{timeout => Timeout})
    catch
        exit:{timeout, _} -> {error, timeout};
        exit:{Why, _} -> {error, {controller, Why}}
    end,
    {Outcome, Old, New, Res} = case Result of
        {ok, #{old_pids := O, new_pids := N} = R} -> {ok, O, N, R};
        {error, Why2} -> {{error, Why2}, undefined, undefined, undefined}
    end,
    Detail = #{kind => restart, action => Action, outcome => Outcome, previous => Old, new => New, result => Res,
               replaced_receipt => none, reversible => false,
               elapsed_us => erlang:monotonic_time(microsecond) - T0, reason => Reason},
    case append(restart, Detail) of
        {ok, Summary} -> outcome(restart, Outcome, Summary);
        {error, LedgerError} ->
            logger:error("actuator: the receipt of ~0p (~0p) could not be written: ~0p", [Action, Outcome, LedgerError], ?LOG),
            {error, {ledger, LedgerError}}
    end.

%%% Receipts, events, metrics

append(Kind, Detail0) ->
    Detail = Detail0#{node => node(), at => now_us()},
    case autonomic_ledger:append(autonomic_receipt:action(Kind), autonomic_receipt:encode(Detail)) of
        {ok, #{id := Id, seq := Seq}} ->
            {ok, maps:merge(maps:without([node, at], Detail), #{receipt => Id, seq => Seq})};
        {error, _} = Error ->
            Error
    end.

outcome(Kind, Outcome, #{receipt := Id, action := Action} = Summary) ->
    Label = case Outcome of ok -> ok; _ -> error end,
    ok = autonomic_metrics:inc(autonomic_actions_total, #{kind => Kind, outcome => Label}),
    _ = autonomic_events:publish(action_executed, #{kind => Kind, receipt => Id, action => Action, outcome => Outcome}),
    case Outcome of
        ok ->
            logger:notice("actuator: ~0p done (receipt ~s)", [Action, Id], ?LOG),
            {ok, Summary};
        {error, Why} = Error ->
            logger:error("actuator: ~0p failed (receipt ~s): ~0p", [Action, Id, Why], ?LOG),
            _ = autonomic_execute_config:get(escalate_failed_actions) andalso
                autonomic_escalate:escalate_async(error, io_lib:format("action ~0p failed", [Action]),
                                                  #{receipt => Id, action => Action, reason => Why}),
            Error
    end.

%% Runs Fun in a process of its own for at most Timeout ms.
with_timeout(Fun, Timeout) ->
    Self = self(),
    {Pid, MRef} = spawn_monitor(fun() -> Self ! {self(), Fun()} end),
    receive
        {Pid, Result} ->
            erlang:demonitor(MRef, [flush]),
            {ok, Result};
        {'DOWN', MRef, process, Pid, Why} ->
            {error, {crashed, Why}}
    after Timeout ->
        exit(Pid, kill),
        receive {'DOWN', MRef, process, Pid, _} -> ok end,
        %% A result sent just before the kill arrived before the 'DOWN': drop it.
        receive {Pid, _} -> ok after 0 -> ok end,
        {error, timeout}
    end.

options(Opts) when is_map(Opts) ->
    case {maps:get(timeout, Opts, autonomic_execute_config:get(action_timeout_ms)), maps:get(reason, Opts, <<>>),
          maps:keys(maps:without([timeout, reason], Opts))} of
        {_, _, [K | _]} -> {error, {unknown_option, K}};
        {T, _, _} when not (is_integer(T) andalso T > 0) -> {error, {invalid_timeout, T}};
        {T, R, _} ->
            try unicode:characters_to_binary(R) of
                B when is_binary(B) -> {ok, T, B};
                _ -> {error, {invalid_reason, R}}
            catch
                _:_ -> {error, {invalid_reason, R}}
            end
    end;
options(Opts) ->
    {error, {invalid_options, Opts}}.

tenant(T) when is_binary(T), byte_size(T) > 0, byte_size(T) =< 256 -> ok;
tenant(_) -> {error, invalid_tenant}.

percent(P) when is_integer(P), P >= 0, P =< 100 -> ok;
percent(P) -> {error, {invalid_percent, P}}.

first([]) -> ok;
first([ok | Rest]) -> first(Rest);
first([Error | _]) -> Error.

now_us() -> erlang:system_time(microsecond).
