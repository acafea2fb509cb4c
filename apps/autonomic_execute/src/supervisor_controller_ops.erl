%%% @doc The operations of {@link supervisor_controller}, run on the node of the target
%%% supervisor (through `erpc', also for the local node): they use only OTP's `supervisor' API and
%%% process introspection, so a remote node needs this module and nothing else of autonomic.
%%%
%%% Every operation first resolves the supervisor (a registered name or a pid on this node),
%%% checks that it is one (`proc_lib:initial_call/1' is `{supervisor, _, _}'), refuses protected
%%% supervisors (see {@link protected/3}), and takes a `global' lock on the supervisor's pid on
%%% this node, so that two operations on one supervisor never overlap, whichever node or process
%%% asked. Checks that fail return `{refused, Reason}' before anything was changed.
%%%
%%% Restarts, with `ChildId' naming a child of `Sup' (the one whose failure prompted it):
%%% <ul>
%%%   <li>`quick': `terminate_child' then `restart_child' of that child only; a `temporary'
%%%       child is refused (`{temporary_child, Id}'): OTP never restarts one, and does not even
%%%       keep the arguments it was started with;</li>
%%%   <li>`full': every child of `Sup' terminated in reverse start order, then restarted in start
%%%       order, as a `one_for_all' supervisor would (and as it would, `temporary' children are
%%%       terminated and not restarted: their `new' is `undefined');</li>
%%%   <li>`cold': `Sup' itself terminated and restarted by its parent supervisor (the process
%%%       that spawned it), which starts all of its children anew.</li>
%%% </ul>
%%% Terminating through the supervisor API counts nothing against the supervisors' restart
%%% intensity. The result is returned only after the new processes were checked: each is alive,
%%% none is one of the old ones, the old ones are dead, and the supervisor lists the new ones.
-module(supervisor_controller_ops).

-export([execute/2, which/1, is_protected/2, protected/3, otp_apps/0]).

-export_type([op/0, protection/0, restart_result/0]).

-type sup_ref() :: atom() | pid().
-type op() ::
    {restart, sup_ref(), term(), quick | full | cold}
    | {add, sup_ref(), supervisor:child_spec()}
    | {remove, sup_ref(), term()}.
-type protection() :: #{apps := [atom()], names := [atom()]}.
-type restart_result() :: #{
    elapsed_us := non_neg_integer(),
    old_pids := [pid()],
    new_pids := [pid()],
    children := [#{id := term(), old := pid() | undefined, new := pid()}]
}.
%% `old_pids' and `new_pids' are in start order; for `cold' the supervisor comes first.
%% `children' pairs each restarted child's old and new pid (`old' is `undefined' for a child
%% that was not running).

%% OTP's applications (erts 13 / OTP 25): their supervisors are never touched.
-define(OTP_APPS, [
    asn1, common_test, compiler, crypto, debugger, dialyzer, diameter, edoc, eldap, erl_docgen,
    erl_interface, erts, et, eunit, ftp, inets, jinterface, kernel, megaco, mnesia, observer, odbc,
    os_mon, parsetools, public_key, reltool, runtime_tools, sasl, snmp, ssh, ssl, stdlib,
    syntax_tools, tftp, tools, wx, xmerl
]).
%% Registered names of supervisors that belong to the runtime itself, refused whatever their
%% group leader says.
-define(OTP_NAMES, [kernel_sup, kernel_safe_sup, logger_sup, net_sup, standard_error_sup, user_sup,
                    erl_distribution, sasl_sup, sasl_safe_sup, os_mon_sup, inets_sup, ssl_sup]).

%% @doc The OTP applications whose supervisors are protected.
-spec otp_apps() -> [atom()].
otp_apps() ->
    ?OTP_APPS.

%% @doc Runs `Op' on this node (see the module doc).
-spec execute(op(), protection()) ->
    {ok, restart_result()} | {ok, pid()} | ok | {error, term()} | {refused, term()}.
execute(Op, Protection) ->
    SupRef = element(2, Op),
    case resolve(SupRef) of
        {ok, Sup} ->
            case protected(Sup, SupRef, Protection) of
                true ->
                    {refused, {protected, SupRef}};
                false ->
                    Lock = {{supervisor_controller, Sup}, self()},
                    case global:set_lock(Lock, [node()], 0) of
                        true ->
                            try
                                run(Op, Sup)
                            after
                                global:del_lock(Lock, [node()])
                            end;
                        false ->
                            {refused, {busy, SupRef}}
                    end
            end;
        {refused, _} = Refused ->
            Refused
    end.

%% @doc The children of the supervisor `SupRef' (on this node) in start order.
-spec which(sup_ref()) -> {ok, [{term(), pid() | restarting | undefined, worker | supervisor, [module()] | dynamic}]}
                          | {refused, term()}.
which(SupRef) ->
    case resolve(SupRef) of
        {ok, Sup} -> {ok, start_order(Sup)};
        Refused -> Refused
    end.

%% @doc Whether the supervisor `SupRef' (on this node) is protected.
-spec is_protected(sup_ref(), protection()) -> boolean() | {refused, term()}.
is_protected(SupRef, Protection) ->
    case resolve(SupRef) of
        {ok, Sup} -> protected(Sup, SupRef, Protection);
        Refused -> Refused
    end.

%% @doc Whether the supervisor `Sup' (a local pid, known as `SupRef') is protected: it belongs to
%% an OTP application, to autonomic (an application named `autonomic' or `autonomic_*'), or to
%% one of `Protection''s applications (by `application:get_application/1', that is by its group
%% leader), or its registered name is one of OTP's own supervisors or in `Protection''s names.
-spec protected(pid(), sup_ref(), protection()) -> boolean().
protected(Sup, SupRef, #{apps := Apps, names := Names}) ->
    Name = case erlang:process_info(Sup, registered_name) of
        {registered_name, N} -> N;
        _ -> SupRef
    end,
    lists:member(Name, ?OTP_NAMES) orelse lists:member(Name, Names) orelse
        case application:get_application(Sup) of
            {ok, App} -> protected_app(App, Apps);
            undefined -> false
        end.

protected_app(App, Apps) ->
    lists:member(App, ?OTP_APPS) orelse lists:member(App, Apps) orelse App =:= autonomic orelse
        lists:prefix("autonomic_", atom_to_list(App)).

%%% Operations

run({restart, SupRef, Id, quick}, Sup) ->
    with_children(SupRef, Sup, Id, fun(Children) ->
                                       case temporary(Sup, Id) of
                                           true -> {refused, {temporary_child, Id}};
                                           false -> quick(Sup, Id, Children)
                                       end
                                   end);
run({restart, SupRef, Id, full}, Sup) ->
    with_children(SupRef, Sup, Id, fun(Children) -> full(Sup, Children) end);
run({restart, SupRef, Id, cold}, Sup) ->
    with_children(SupRef, Sup, Id, fun(Children) -> cold(SupRef, Sup, Children) end);
run({add, _SupRef, Spec}, Sup) ->
    case supervisor:start_child(Sup, Spec) of
        {ok, Pid} when is_pid(Pid) -> {ok, Pid};
        {ok, Pid, _Info} when is_pid(Pid) -> {ok, Pid};
        {ok, undefined} -> {error, ignored};
        {ok, undefined, _} -> {error, ignored};
        {error, _} = Error -> Error
    end;
run({remove, _SupRef, Id}, Sup) ->
    case supervisor:terminate_child(Sup, Id) of
        ok ->
            case supervisor:delete_child(Sup, Id) of
                ok -> ok;
                %% A temporary child's spec goes with its process.
                {error, not_found} -> ok;
                {error, _} = Error -> Error
            end;
        {error, not_found} ->
            {refused, {no_such_child, Id}};
        {error, _} = Error ->
            Error
    end.

%% Checks that Id is a child of a supervisor with static children before `Fun' acts. The
%% children of a simple_one_for_one supervisor have no ids (and no specs to restart them from).
with_children(SupRef, Sup, Id, Fun) ->
    Children = start_order(Sup),
    Dynamic = [C || {undefined, C, _, _} <- Children],
    Restarting = [C || {C, restarting, _, _} <- Children],
    if
        Dynamic =/= [] -> {refused, {simple_one_for_one, SupRef}};
        Restarting =/= [] -> {refused, {child_restarting, hd(Restarting)}};
        true ->
            case lists:keymember(Id, 1, Children) of
                true -> Fun(Children);
                false -> {refused, {no_such_child, Id}}
            end
    end.

quick(Sup, Id, Children) ->
    {_, Old, _, _} = lists:keyfind(Id, 1, Children),
    T0 = erlang:monotonic_time(microsecond),
    case restart_one(Sup, Id) of
        {ok, New} ->
            Pairs = [#{id => Id, old => Old, new => New}],
            verify(T0, Sup, pids([Old]), [New], Pairs);
        {error, _} = Error ->
            Error
    end.

full(Sup, Children) ->
    Ids = [Id || {Id, _, _, _} <- Children],
    Temporary = [Id || Id <- Ids, temporary(Sup, Id)],
    T0 = erlang:monotonic_time(microsecond),
    case terminate_all(Sup, lists:reverse(Ids)) of
        ok ->
            %% Every child is started even when one before it fails to: a failure leaves as few
            %% children down as it can, and the error names each that is.
            case start_all(Sup, Ids -- Temporary, [], []) of
                {Started, []} ->
                    New = maps:from_list(Started),
                    Pairs = [#{id => Id, old => Old, new => maps:get(Id, New, undefined)} || {Id, Old, _, _} <- Children],
                    verify(T0, Sup, pids([Old || {_, Old, _, _} <- Children]), [P || {_, P} <- Started], Pairs);
                {_, Failed} ->
                    {error, {not_restarted, Failed}}
            end;
        {error, _} = Error ->
            Error
    end.

cold(SupRef, Sup, Children) ->
    case parent(SupRef, Sup) of
        {ok, Parent, ParentId} ->
            case temporary(Parent, ParentId) of
                true -> {refused, {temporary_child, ParentId}};
                false -> cold(SupRef, Sup, Children, Parent, ParentId)
            end;
        {refused, _} = Refused ->
            Refused
    end.

cold(SupRef, Sup, Children, Parent, ParentId) ->
    OldChildren = pids([P || {_, P, _, _} <- Children]),
    T0 = erlang:monotonic_time(microsecond),
    case restart_one(Parent, ParentId) of
        {ok, NewSup} ->
            NewKids = start_order(NewSup),
            Pairs = [#{id => Id, old => old_pid(Id, Children), new => P} || {Id, P, _, _} <- NewKids],
            case is_atom(SupRef) andalso whereis(SupRef) =/= NewSup of
                true -> {error, {not_registered_again, SupRef}};
                false -> verify(T0, Parent, [Sup | OldChildren], [NewSup | [P || {_, P, _, _} <- NewKids]], Pairs)
            end;
        {error, _} = Error ->
            Error
    end.

%% terminate_child then restart_child (never for a temporary child: its spec goes with it).
restart_one(Sup, Id) ->
    case supervisor:terminate_child(Sup, Id) of
        ok -> started(Id, supervisor:restart_child(Sup, Id));
        {error, Reason} -> {error, {terminate_failed, Id, Reason}}
    end.

started(_Id, {ok, Pid}) when is_pid(Pid) -> {ok, Pid};
started(_Id, {ok, Pid, _}) when is_pid(Pid) -> {ok, Pid};
started(Id, {ok, undefined}) -> {error, {not_started, Id, ignore}};
started(Id, {ok, undefined, _}) -> {error, {not_started, Id, ignore}};
started(Id, {error, Reason}) -> {error, {restart_failed, Id, Reason}}.

temporary(Sup, Id) ->
    case supervisor:get_childspec(Sup, Id) of
        {ok, #{restart := temporary}} -> true;
        _ -> false
    end.

terminate_all(_Sup, []) ->
    ok;
terminate_all(Sup, [Id | Ids]) ->
    case supervisor:terminate_child(Sup, Id) of
        ok -> terminate_all(Sup, Ids);
        {error, Reason} -> {error, {terminate_failed, Id, Reason}}
    end.

start_all(_Sup, [], Started, Failed) ->
    {lists:reverse(Started), lists:reverse(Failed)};
start_all(Sup, [Id | Ids], Started, Failed) ->
    case started(Id, supervisor:restart_child(Sup, Id)) of
        {ok, Pid} -> start_all(Sup, Ids, [{Id, Pid} | Started], Failed);
        {error, Reason} -> start_all(Sup, Ids, Started, [Reason | Failed])
    end.

%% The checks behind "verified alive".
verify(T0, Sup, Old, New, Pairs) ->
    Reported = [P || {_, P, _, _} <- start_order(Sup)] ++ lists:append([supervisor_pids(P) || P <- New]),
    Problems =
        [{not_alive, P} || P <- New, not is_process_alive(P)] ++
        [{not_new, P} || P <- New, lists:member(P, Old)] ++
        [{still_alive, P} || P <- Old, is_process_alive(P)] ++
        [{not_supervised, P} || P <- New, not lists:member(P, Reported)],
    case Problems of
        [] ->
            {ok, #{elapsed_us => erlang:monotonic_time(microsecond) - T0, old_pids => Old, new_pids => New,
                   children => Pairs}};
        _ ->
            {error, {verify_failed, Problems}}
    end.

%% The children of a restarted supervisor are reported by it, not by its parent.
supervisor_pids(P) ->
    case proc_lib:initial_call(P) of
        {supervisor, _, _} -> [P | [C || {_, C, _, _} <- start_order(P)]];
        _ -> []
    end.

%%% Helpers

resolve(Name) when is_atom(Name) ->
    case whereis(Name) of
        undefined -> {refused, {noproc, Name}};
        Pid -> check_supervisor(Pid, Name)
    end;
resolve(Pid) when is_pid(Pid) ->
    case is_process_alive(Pid) of
        true -> check_supervisor(Pid, Pid);
        false -> {refused, {noproc, Pid}}
    end.

check_supervisor(Pid, Ref) ->
    case proc_lib:initial_call(Pid) of
        {supervisor, _, _} -> {ok, Pid};
        _ -> {refused, {not_a_supervisor, Ref}}
    end.

%% The parent supervisor of Sup: the process that spawned it (the supervisor whose start
%% function started it), and Sup's child id there.
parent(SupRef, Sup) ->
    Refused = {refused, {no_parent_supervisor, SupRef}},
    case erlang:process_info(Sup, parent) of
        {parent, Parent} when is_pid(Parent) ->
            case proc_lib:initial_call(Parent) of
                {supervisor, _, _} ->
                    case [Id || {Id, P, _, _} <- supervisor:which_children(Parent), P =:= Sup] of
                        [Id] -> {ok, Parent, Id};
                        [] -> Refused
                    end;
                _ ->
                    Refused
            end;
        _ ->
            Refused
    end.

%% which_children lists the most recently started child first.
start_order(Sup) ->
    lists:reverse(supervisor:which_children(Sup)).

pids(L) ->
    [P || P <- L, is_pid(P)].

old_pid(Id, Children) ->
    case lists:keyfind(Id, 1, Children) of
        {_, P, _, _} when is_pid(P) -> P;
        _ -> undefined
    end.
