%%% @doc Restarts, adds and removes the children of supervisors, local or on other nodes, safely.
%%%
%%% ```
%%% 1> supervisor_controller:restart_child(db_sup, pool, quick).
%%% {ok,#{elapsed_us => 412,old_pids => [<0.201.0>],new_pids => [<0.388.0>],
%%%       children => [#{id => pool,old => <0.201.0>,new => <0.388.0>}]}}
%%% 2> supervisor_controller:restart_child({db_sup, 'app@host2'}, pool, cold).
%%% {ok,#{elapsed_us => 2210,old_pids => [...],new_pids => [...],children => [...]}}
%%% '''
%%%
%%% `SupRef' is a registered name (this node), `{Name, Node}' or a pid. Restart types (what
%%% exactly each does, and how the result is verified, is in {@link supervisor_controller_ops}):
%%% `quick' restarts the child `ChildId' only; `full' restarts every child of the supervisor, in
%%% start order; `cold' restarts the supervisor itself through its parent. `ChildId' names a
%%% child of `SupRef' in every type (the child whose failure prompted the restart).
%%% `{ok, #{elapsed_us, old_pids, new_pids, children}}' is returned only after the new processes
%%% were verified alive (and the old ones dead), else `{error, Reason}'.
%%%
%%% Safety:
%%% <ul>
%%%   <li>OTP's supervisors and autonomic's own are refused with `{error, {protected, SupRef}}'
%%%       ({@link supervisor_controller_ops:protected/3}: by the application that owns the
%%%       supervisor, plus a list of registered names; `protected_apps' and
%%%       `protected_supervisors' add more);</li>
%%%   <li>a restart of a supervisor less than `restart_cooldown_ms' (10 s) after the previous one
%%%       ended is refused with `{error, {cooldown, SupRef, RemainingMs}}';</li>
%%%   <li>two operations on one supervisor never overlap: this process refuses a second one with
%%%       `{error, {busy, SupRef}}', and on the target node a `global' lock on the supervisor's pid
%%%       keeps out operations asked by other nodes.</li>
%%% </ul>
%%% Each operation runs in a process of its own (on the target node, through `erpc'), which is
%%% not linked to this server and is never killed half way: a caller whose timeout (default
%%% `action_timeout_ms', 30 s) expires gets `{error, timeout}' while the operation completes,
%%% the supervisor stays busy until it has, and its real outcome is logged.
%%%
%%% Refusals (`protected', `busy', `cooldown', `noproc', `not_a_supervisor', `no_such_child',
%%% `simple_one_for_one', `no_parent_supervisor', `child_restarting') change nothing and start no
%%% cooldown. Every restart is counted in `autonomic_restarts_total{type, outcome}' and timed in
%%% `autonomic_restart_seconds{type}'.
-module(supervisor_controller).
-behaviour(gen_server).

-export([start_link/0]).
-export([restart_child/3, restart_child/4, add_child/2, add_child/3, remove_child/2, remove_child/3,
         which_children/1, is_protected/1, info/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-export_type([sup_ref/0, restart_type/0, options/0]).

-define(LOG, #{domain => [autonomic, execute]}).

-type sup_ref() :: atom() | {atom(), node()} | pid().
-type restart_type() :: quick | full | cold.
-type options() :: #{timeout => pos_integer()}.

-record(op, {
    key :: term(),
    ref :: sup_ref(),
    kind :: restart | add | remove,
    type :: restart_type() | undefined,
    from :: gen_server:from() | undefined,
    timer :: reference(),
    started :: integer()
}).

%%% API

%% @doc Starts the controller (from `autonomic_execute_sup').
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Restarts with the default timeout; see {@link restart_child/4}.
-spec restart_child(sup_ref(), term(), restart_type()) ->
    {ok, supervisor_controller_ops:restart_result()} | {error, term()}.
restart_child(SupRef, ChildId, Type) ->
    restart_child(SupRef, ChildId, Type, #{}).

%% @doc Restarts `ChildId' of `SupRef' (`quick'), every child of `SupRef' (`full') or `SupRef'
%% itself through its parent (`cold'); see the module doc.
-spec restart_child(sup_ref(), term(), restart_type(), options()) ->
    {ok, supervisor_controller_ops:restart_result()} | {error, term()}.
restart_child(SupRef, ChildId, Type, Opts) ->
    case {check_ref(SupRef), check_type(Type), timeout(Opts)} of
        {ok, ok, {ok, Timeout}} -> request({restart, SupRef, ChildId, Type}, Timeout);
        {{error, _} = E, _, _} -> E;
        {_, {error, _} = E, _} -> E;
        {_, _, {error, _} = E} -> E
    end.

%% @doc Starts a child under `SupRef' from `ChildSpec' (`supervisor:start_child/2').
-spec add_child(sup_ref(), supervisor:child_spec()) -> {ok, pid()} | {error, term()}.
add_child(SupRef, ChildSpec) ->
    add_child(SupRef, ChildSpec, #{}).

%% @doc As {@link add_child/2}, with a timeout.
-spec add_child(sup_ref(), supervisor:child_spec(), options()) -> {ok, pid()} | {error, term()}.
add_child(SupRef, ChildSpec, Opts) ->
    case {check_ref(SupRef), timeout(Opts)} of
        {ok, {ok, Timeout}} when is_map(ChildSpec); is_tuple(ChildSpec) ->
            request({add, SupRef, ChildSpec}, Timeout);
        {ok, {ok, _}} -> {error, {invalid_child_spec, ChildSpec}};
        {{error, _} = E, _} -> E;
        {_, {error, _} = E} -> E
    end.

%% @doc Terminates the child `ChildId' of `SupRef' and deletes its spec.
-spec remove_child(sup_ref(), term()) -> ok | {error, term()}.
remove_child(SupRef, ChildId) ->
    remove_child(SupRef, ChildId, #{}).

%% @doc As {@link remove_child/2}, with a timeout.
-spec remove_child(sup_ref(), term(), options()) -> ok | {error, term()}.
remove_child(SupRef, ChildId, Opts) ->
    case {check_ref(SupRef), timeout(Opts)} of
        {ok, {ok, Timeout}} -> request({remove, SupRef, ChildId}, Timeout);
        {{error, _} = E, _} -> E;
        {_, {error, _} = E} -> E
    end.

%% @doc The children of `SupRef' as `supervisor:which_children/1' describes them, in start
%% order (the first started first). Reading is allowed on protected supervisors too.
-spec which_children(sup_ref()) ->
    {ok, [{term(), pid() | restarting | undefined, worker | supervisor, [module()] | dynamic}]}
    | {error, term()}.
which_children(SupRef) ->
    case check_ref(SupRef) of
        ok ->
            {Node, Local} = target(SupRef),
            case as_given(remote(Node, which, [Local], read_timeout()), Local, SupRef) of
                {refused, Reason} -> {error, Reason};
                Other -> Other
            end;
        {error, _} = E ->
            E
    end.

%% @doc Whether `SupRef' is a protected supervisor (restarts, adds and removes are refused).
-spec is_protected(sup_ref()) -> boolean() | {error, term()}.
is_protected(SupRef) ->
    case check_ref(SupRef) of
        ok ->
            {Node, Local} = target(SupRef),
            case as_given(remote(Node, is_protected, [Local, protection()], read_timeout()), Local, SupRef) of
                {refused, Reason} -> {error, Reason};
                Other -> Other
            end;
        {error, _} = E ->
            E
    end.

%% @doc Operations in progress and cooldowns in force (remaining milliseconds), by target.
-spec info() -> #{busy := [term()], cooldowns := #{term() => non_neg_integer()}}.
info() ->
    gen_server:call(?MODULE, info).

%%% gen_server

%% @private
-spec init([]) -> {ok, map()}.
init([]) ->
    {ok, #{busy => #{}, last => #{}}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()} | {noreply, map()}.
handle_call({op, Op, Timeout}, From, #{busy := Busy, last := Last} = S) ->
    SupRef = element(2, Op),
    Key = key(SupRef),
    Now = erlang:monotonic_time(millisecond),
    Cooldown = autonomic_execute_config:get(restart_cooldown_ms),
    case {Busy, Last} of
        {#{Key := _}, _} ->
            {reply, {error, {busy, SupRef}}, S};
        {_, #{Key := Ended}} when element(1, Op) =:= restart, Now - Ended < Cooldown ->
            {reply, {error, {cooldown, SupRef, Cooldown - (Now - Ended)}}, S};
        _ ->
            {Node, Local} = target(SupRef),
            LocalOp = setelement(2, Op, Local),
            Protection = protection(),
            Self = self(),
            %% Not linked: an operation is never cut half way, not even by this server's death.
            {Pid, _} = spawn_monitor(fun() ->
                                         Result = as_given(run(Node, LocalOp, Protection), Local, SupRef),
                                         Self ! {done, self(), Result}
                                     end),
            Timer = erlang:send_after(Timeout, self(), {timeout, Pid}),
            Rec = #op{key = Key, ref = SupRef, kind = element(1, Op), from = From, timer = Timer,
                      type = case Op of {restart, _, _, T} -> T; _ -> undefined end, started = Now},
            {noreply, S#{busy := Busy#{Key => {Pid, Rec}}}}
    end;
handle_call(info, _From, #{busy := Busy, last := Last} = S) ->
    Now = erlang:monotonic_time(millisecond),
    Cooldown = autonomic_execute_config:get(restart_cooldown_ms),
    Cool = maps:filter(fun(_, R) -> R > 0 end, maps:map(fun(_, Ended) -> Cooldown - (Now - Ended) end, Last)),
    {reply, #{busy => maps:keys(Busy), cooldowns => Cool}, S};
handle_call(_Req, _From, S) ->
    {reply, {error, unknown_call}, S}.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) ->
    {noreply, S}.

%% @private
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({done, Pid, Result}, S) ->
    {noreply, finish(Pid, Result, S)};
handle_info({'DOWN', _, process, Pid, Reason}, S) ->
    %% After {done, ...} (same sender, so in order) this finds nothing to do.
    {noreply, finish(Pid, {error, {crashed, Reason}}, S)};
handle_info({timeout, Pid}, #{busy := Busy} = S) ->
    case [K || {K, {P, _}} <- maps:to_list(Busy), P =:= Pid] of
        [Key] ->
            {Pid, #op{from = From, ref = Ref} = Rec} = maps:get(Key, Busy),
            gen_server:reply(From, {error, timeout}),
            logger:warning("supervisor_controller: ~p on ~p timed out; it keeps running and the supervisor "
                           "stays busy until it ends", [Rec#op.kind, Ref], ?LOG),
            {noreply, S#{busy := Busy#{Key := {Pid, Rec#op{from = undefined}}}}};
        [] ->
            {noreply, S}
    end;
handle_info(_Msg, S) ->
    {noreply, S}.

finish(Pid, Result0, #{busy := Busy, last := Last} = S) ->
    case [K || {K, {P, _}} <- maps:to_list(Busy), P =:= Pid] of
        [Key] ->
            {Pid, #op{} = Rec} = maps:get(Key, Busy),
            _ = erlang:cancel_timer(Rec#op.timer),
            {Acted, Result} = case Result0 of
                {refused, Reason} -> {false, {error, Reason}};
                Other -> {true, Other}
            end,
            report(Rec, Acted, Result),
            case Rec#op.from of
                undefined -> ok;
                From -> gen_server:reply(From, Result)
            end,
            %% Cooldowns that have run out are forgotten, so the map holds only those in force.
            Now = erlang:monotonic_time(millisecond),
            Cooldown = autonomic_execute_config:get(restart_cooldown_ms),
            Live = maps:filter(fun(_, Ended) -> Now - Ended < Cooldown end, Last),
            Last1 = case Rec#op.kind =:= restart andalso Acted of
                true -> Live#{Key => Now};
                false -> Live
            end,
            S#{busy := maps:remove(Key, Busy), last := Last1};
        [] ->
            S
    end.

report(#op{kind = restart, type = Type, ref = Ref, started = Started, from = From}, Acted, Result) ->
    Outcome = case {Acted, Result} of
        {false, _} -> refused;
        {true, {ok, _}} -> ok;
        {true, _} -> error
    end,
    ok = autonomic_metrics:inc(autonomic_restarts_total, #{type => Type, outcome => Outcome}),
    case Result of
        {ok, #{elapsed_us := Us}} ->
            ok = autonomic_metrics:observe(autonomic_restart_seconds, #{type => Type}, Us / 1.0e6),
            logger:notice("supervisor_controller: ~p restart of ~p in ~b us", [Type, Ref, Us], ?LOG);
        {error, Reason} when Acted ->
            Late = case From of undefined -> " (after its caller's timeout)"; _ -> "" end,
            logger:error("supervisor_controller: ~p restart of ~p failed~s: ~p; ~b ms after it began",
                         [Type, Ref, Late, Reason, erlang:monotonic_time(millisecond) - Started], ?LOG);
        {error, Reason} ->
            logger:info("supervisor_controller: ~p restart of ~p refused: ~p", [Type, Ref, Reason], ?LOG)
    end;
report(#op{kind = Kind, ref = Ref}, _Acted, Result) ->
    logger:info("supervisor_controller: ~p on ~p: ~p", [Kind, Ref, Result], ?LOG).

%%% Internal

request(Op, Timeout) ->
    %% The server replies by the timeout itself; the margin covers a busy server.
    gen_server:call(?MODULE, {op, Op, Timeout}, Timeout + 5000).

run(Node, Op, Protection) ->
    %% No timeout: an operation is never abandoned half way (a node that stops answering ends
    %% it with noconnection when the distribution gives up on it).
    remote(Node, execute, [Op, Protection], infinity).

%% Reads give up after the action timeout.
read_timeout() ->
    autonomic_execute_config:get(action_timeout_ms).

%% Applies a function of supervisor_controller_ops on Node (through erpc when it is another
%% node: only that module is needed there).
remote(Node, F, A, Timeout) ->
    try
        case Node =:= node() of
            true -> apply(supervisor_controller_ops, F, A);
            false -> erpc:call(Node, supervisor_controller_ops, F, A, Timeout)
        end
    catch
        error:{erpc, Reason} -> {error, {erpc, Node, Reason}};
        error:{exception, undef, [{supervisor_controller_ops, _, _, _} | _]} -> {error, {erpc, Node, not_loaded}};
        error:{exception, Reason, _} -> {error, {erpc, Node, {exception, Reason}}};
        exit:{exception, Reason} -> {error, {erpc, Node, {exit, Reason}}};
        exit:{signal, Reason} -> {error, {erpc, Node, {exit, Reason}}}
    end.

%% The target node names the supervisor by its local name; callers get theirs back.
as_given({Tag, {Reason, Local}}, Local, SupRef) when Tag =:= refused; Tag =:= error ->
    {Tag, {Reason, SupRef}};
as_given(Result, _Local, _SupRef) ->
    Result.

protection() ->
    #{apps => autonomic_execute_config:get(protected_apps),
      names => autonomic_execute_config:get(protected_supervisors)}.

check_ref(Name) when is_atom(Name) -> ok;
check_ref({Name, Node}) when is_atom(Name), is_atom(Node) -> ok;
check_ref(Pid) when is_pid(Pid) -> ok;
check_ref(Other) -> {error, {invalid_supref, Other}}.

check_type(T) when T =:= quick; T =:= full; T =:= cold -> ok;
check_type(T) -> {error, {invalid_restart_type, T}}.

timeout(Opts) when is_map(Opts) ->
    case maps:get(timeout, Opts, autonomic_execute_config:get(action_timeout_ms)) of
        T when is_integer(T), T > 0 -> {ok, T};
        T -> {error, {invalid_timeout, T}}
    end;
timeout(Opts) ->
    {error, {invalid_options, Opts}}.

%% Where the supervisor lives, and how that node names it.
target({Name, Node}) -> {Node, Name};
target(Pid) when is_pid(Pid) -> {node(Pid), Pid};
target(Name) -> {node(), Name}.

%% One key per supervisor as named by callers: {Name, Node} or a pid.
key({Name, Node}) -> {Name, Node};
key(Pid) when is_pid(Pid) -> Pid;
key(Name) -> {Name, node()}.
