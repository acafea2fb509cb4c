%%% @doc The services this node runs that the loop may heal: a registry per node (the coordinator
%%% asks every node's registry for a snapshot). Each registered service's supervisor is
%%% monitored: when it dies (a child crashed past its restart intensity, say) the registry
%%% reports it at once with `mape_k_monitor:report_failure/1' (`#{kind => service_down, service,
%%% node, supervisor, reason}'), which wakes the coordinator, and keeps the service `down' in
%%% its snapshot until the supervisor runs again (so a failure is never lost with an event).
%%%
%%% Spec (see `autonomic_loop:register_service/2'): `supervisor' (required, a locally
%%% registered supervisor), `children', `depends_on', `backend', `checks', `tenants', and
%%% `parent' (the locally registered supervisor that has `supervisor' as a child: what restarts
%%% the service when its supervisor is gone), and `target_checks' (`#{BackendTarget => Check}':
%%% the check that tells whether each target of `backend' is healthy, so a failover only moves to
%%% a healthy target and is verified by the active target's check).
-module(autonomic_loop_services).
-behaviour(gen_server).

-export([start_link/0, register_service/2, unregister_service/1, local/0, memory/0, validate/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-export_type([spec/0]).

-type spec() :: #{supervisor := atom(), children => [term()], depends_on => [atom()],
                  backend => atom(), checks => [term()], tenants => boolean(), parent => atom(),
                  target_checks => #{term() => term()}}.

-define(LOG, #{domain => [autonomic, loop]}).
%% How often a service whose supervisor is down is looked for again.
-define(RECHECK_MS, 250).

%% @doc Starts the registry (from {@link autonomic_loop_sup}).
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Registers (or replaces) a service of this node after checking its spec.
-spec register_service(atom(), term()) -> ok | {error, term()}.
register_service(Name, Spec) when is_atom(Name) ->
    case validate(Spec) of
        {ok, Normal} -> gen_server:call(?MODULE, {register, Name, Normal});
        {error, _} = Error -> Error
    end;
register_service(Name, _Spec) ->
    {error, {invalid_service_name, Name}}.

%% @doc Forgets a service of this node (idempotent).
-spec unregister_service(atom()) -> ok.
unregister_service(Name) ->
    gen_server:call(?MODULE, {unregister, Name}).

%% @doc This node's services: `[{Name, Spec, up | down}]'.
-spec local() -> [{atom(), spec(), up | down}].
local() ->
    gen_server:call(?MODULE, local).

%% @doc The memory (bytes) of each running service's processes: its supervisor and, down the
%% tree, every child. What memory pressure on the node is attributed to.
-spec memory() -> #{atom() => non_neg_integer()}.
memory() ->
    maps:from_list([{Name, tree_memory(whereis(maps:get(supervisor, Spec)), 0)} || {Name, Spec, up} <- local()]).

tree_memory(Pid, Depth) when is_pid(Pid), Depth < 8 ->
    Own = case erlang:process_info(Pid, memory) of
        {memory, M} -> M;
        undefined -> 0
    end,
    Children = try supervisor:which_children(Pid) of
        L when is_list(L) -> [C || {_, C, supervisor, _} <- L, is_pid(C)] ++ [{w, C} || {_, C, worker, _} <- L, is_pid(C)]
    catch
        _:_ -> []
    end,
    Own + lists:sum([case C of
                         {w, W} -> tree_memory_worker(W);
                         Sup -> tree_memory(Sup, Depth + 1)
                     end || C <- Children]);
tree_memory(_, _) ->
    0.

tree_memory_worker(Pid) ->
    case erlang:process_info(Pid, memory) of
        {memory, M} -> M;
        undefined -> 0
    end.

%% @doc Checks a spec and fills in its defaults.
-spec validate(term()) -> {ok, spec()} | {error, term()}.
validate(#{supervisor := Sup} = Spec) when is_atom(Sup) ->
    Known = [supervisor, children, depends_on, backend, checks, tenants, parent, target_checks],
    Checks = [
        {unknown_keys, maps:keys(Spec) -- Known, fun(L) -> L =:= [] end},
        {children, maps:get(children, Spec, all), fun(C) -> C =:= all orelse is_list(C) end},
        {depends_on, maps:get(depends_on, Spec, []), fun(D) -> is_list(D) andalso lists:all(fun is_atom/1, D) end},
        {backend, maps:get(backend, Spec, undefined), fun is_atom/1},
        {checks, maps:get(checks, Spec, []), fun is_list/1},
        {tenants, maps:get(tenants, Spec, false), fun is_boolean/1},
        {parent, maps:get(parent, Spec, undefined), fun is_atom/1},
        {target_checks, maps:get(target_checks, Spec, #{}), fun is_map/1}
    ],
    case [{K, V} || {K, V, Ok} <- Checks, not Ok(V)] of
        [] when map_get(children, Spec) =:= [] ->
            {error, {invalid, children, []}};
        [] ->
            {ok, maps:merge(#{children => all, depends_on => [], checks => [], tenants => false}, Spec)};
        [{unknown_keys, Keys} | _] ->
            {error, {unknown_keys, Keys}};
        [{K, V} | _] ->
            {error, {invalid, K, V}}
    end;
validate(Spec) ->
    {error, {invalid_spec, Spec}}.

%%% gen_server

%% @private
-spec init([]) -> {ok, map()}.
init([]) ->
    {ok, #{services => #{}, monitors => #{}}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call({register, Name, Spec}, _From, S0) ->
    S1 = forget(Name, S0),
    S = watch(Name, S1#{services := maps:put(Name, {Spec, down}, maps:get(services, S1))}),
    {reply, ok, S};
handle_call({unregister, Name}, _From, S) ->
    {reply, ok, forget(Name, S)};
handle_call(local, _From, #{services := Services} = S) ->
    {reply, [{Name, Spec, Status} || {Name, {Spec, Status}} <- lists:sort(maps:to_list(Services))], S};
handle_call(_Other, _From, S) ->
    {reply, {error, unknown_call}, S}.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) ->
    {noreply, S}.

%% @private
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({'DOWN', Ref, process, _Pid, Reason}, #{monitors := Mons, services := Services} = S) ->
    case maps:take(Ref, Mons) of
        {Name, Mons1} ->
            {Spec, _} = maps:get(Name, Services),
            logger:warning("loop: service ~p is down (supervisor ~p: ~p)", [Name, maps:get(supervisor, Spec), Reason], ?LOG),
            ok = mape_k_monitor:report_failure(#{kind => service_down, service => Name, node => node(),
                                                 supervisor => maps:get(supervisor, Spec), reason => Reason}),
            erlang:send_after(?RECHECK_MS, self(), {recheck, Name}),
            {noreply, S#{monitors := Mons1, services := maps:put(Name, {Spec, down}, Services)}};
        error ->
            {noreply, S}
    end;
handle_info({recheck, Name}, #{services := Services} = S) ->
    case maps:find(Name, Services) of
        {ok, {_, down}} -> {noreply, watch(Name, S)};
        _ -> {noreply, S}
    end;
handle_info(_Msg, S) ->
    {noreply, S}.

%% Monitors the service's supervisor when it runs (marks it up), else looks again later.
watch(Name, #{services := Services, monitors := Mons} = S) ->
    {Spec, _} = maps:get(Name, Services),
    case whereis(maps:get(supervisor, Spec)) of
        Pid when is_pid(Pid) ->
            Ref = erlang:monitor(process, Pid),
            S#{services := maps:put(Name, {Spec, up}, Services), monitors := maps:put(Ref, Name, Mons)};
        undefined ->
            erlang:send_after(?RECHECK_MS, self(), {recheck, Name}),
            S
    end.

forget(Name, #{services := Services, monitors := Mons} = S) ->
    Refs = [R || {R, N} <- maps:to_list(Mons), N =:= Name],
    [erlang:demonitor(R, [flush]) || R <- Refs],
    S#{services := maps:remove(Name, Services), monitors := maps:without(Refs, Mons)}.
