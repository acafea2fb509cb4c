%%% @doc The workload's health on this node: it registers the backend and breakers
%%% ({@link jobs_backend:install/0}), a monitor health check per store (`jobs_store_primary',
%%% `jobs_store_secondary': a ping through the store's fault hook, every 200 ms, down after 2
%%% failures), and watches the workers.
%%%
%%% The workload's own recovery, which works with or without the MAPE-K loop: every 100 ms, when
%%% the active store's check is down and the other's is up, it fails the backend over
%%% (`autonomic_backends:failover/3', which refuses a stale move, so it never undoes the loop's).
%%% A worker that dies abnormally is reported to the monitor (`failure_reported'
%%% `#{kind => process_crash, service => jobs_example, supervisor => jobs_worker_sup, child, reason}');
%%% its supervisor restarts it. When this node's schedulers are saturated (normal schedulers
%%% 90% busy over the last 250 ms), that is reported too (`#{kind => cpu_saturation,
%%% utilization}'), once until they are below 60% again (checked every 250 ms): the host's CPU figure the monitor
%%% watches cannot tell which node is starved on a shared machine, the schedulers can.
-module(jobs_health).
-behaviour(gen_server).

-export([start_link/0, check_name/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(LOG, #{domain => [autonomic, jobs]}).
-define(TICK_MS, 100).

%% @doc Starts the health process.
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc The monitor check of a store: `jobs_store_primary' or `jobs_store_secondary'.
-spec check_name(node()) -> atom().
check_name(Store) ->
    case jobs_example:stores() of
        [Store | _] -> jobs_store_primary;
        _ -> jobs_store_secondary
    end.

%% @doc Installs backend, breakers and checks.
-spec init([]) -> {ok, map()}.
init([]) ->
    ok = jobs_backend:install(),
    _ = [ok = mape_k_monitor:register_check(check_name(S), {jobs_store, ping, [S, 150]},
                                            #{interval => 200, timeout => 150, failures_before_down => 2})
         || S <- jobs_example:stores()],
    self() ! tick,
    _ = erlang:system_flag(scheduler_wall_time, true),
    self() ! cpu,
    {ok, #{watched => #{}, wall => wall(), saturated => false}}.

%% @doc No calls.
-spec handle_call(term(), gen_server:from(), map()) -> {reply, {error, unknown_call}, map()}.
handle_call(_, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @doc No casts.
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_, St) ->
    {noreply, St}.

%% @doc The periodic failover check and worker watch; worker deaths.
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(tick, St) ->
    ok = failover_if_down(),
    St1 = watch_workers(St),
    _ = erlang:send_after(?TICK_MS, self(), tick),
    {noreply, St1};
handle_info(cpu, #{wall := W0, saturated := Sat} = St) ->
    W1 = wall(),
    U = utilization(W0, W1),
    Sat1 = if
        U >= 0.9, not Sat ->
            ok = mape_k_monitor:report_failure(#{kind => cpu_saturation, service => jobs_example, utilization => U}),
            true;
        U < 0.6 -> false;
        true -> Sat
    end,
    _ = erlang:send_after(250, self(), cpu),
    {noreply, St#{wall := W1, saturated := Sat1}};
handle_info({'DOWN', MRef, process, _Pid, Reason}, #{watched := W} = St) ->
    case maps:take(MRef, W) of
        {{Child, _}, W1} ->
            _ = abnormal(Reason) andalso
                mape_k_monitor:report_failure(#{kind => process_crash, service => jobs_example,
                                                supervisor => jobs_worker_sup, child => Child,
                                                reason => Reason}),
            {noreply, St#{watched := W1}};
        error ->
            {noreply, St}
    end;
handle_info(_, St) ->
    {noreply, St}.

%% @doc Removes the checks (the workload is stopping here).
-spec terminate(term(), map()) -> ok.
terminate(_Reason, _St) ->
    _ = [catch mape_k_monitor:unregister_check(check_name(S)) || S <- jobs_example:stores()],
    ok.

%% The normal schedulers' wall time (dirty ones excluded: a busy loop never runs there).
wall() ->
    N = erlang:system_info(schedulers),
    case erlang:statistics(scheduler_wall_time) of
        undefined -> [];
        L -> [X || {I, _, _} = X <- L, I =< N]
    end.

utilization(W0, W1) ->
    Before = maps:from_list([{I, {A, T}} || {I, A, T} <- W0]),
    {A, T} = lists:foldl(fun({I, A1, T1}, {AA, TT}) ->
                                 case Before of
                                     #{I := {A0, T0}} -> {AA + A1 - A0, TT + T1 - T0};
                                     #{} -> {AA, TT}
                                 end
                         end, {0, 0}, W1),
    case T > 0 of true -> A / T; false -> 0.0 end.

abnormal(normal) -> false;
abnormal(shutdown) -> false;
abnormal({shutdown, _}) -> false;
abnormal(_) -> true.

failover_if_down() ->
    case jobs_example:stores() of
        [_, _] = Stores ->
            Checks = try mape_k_monitor:checks() catch exit:_ -> #{} end,
            State = fun(S) -> maps:get(state, maps:get(check_name(S), Checks, #{}), unknown) end,
            Active = jobs_backend:active(),
            [Other] = Stores -- [Active],
            case {State(Active), State(Other)} of
                %% Only to a store seen up: at start, before the nodes see each other, both
                %% checks fail and nothing must move.
                {down, up} ->
                    case autonomic_backends:failover(jobs_store, Active, Other) of
                        {ok, _} -> logger:notice("jobs: store ~p down, failed over to ~p", [Active, Other], ?LOG);
                        {error, _} -> ok
                    end;
                _ ->
                    ok
            end;
        _ ->
            ok
    end,
    ok.

watch_workers(#{watched := W} = St) ->
    Children = try supervisor:which_children(jobs_worker_sup) catch exit:_ -> [] end,
    Known = maps:values(W),
    New = [{Id, Pid} || {Id, Pid, _, _} <- Children, is_pid(Pid), not lists:member({Id, Pid}, Known)],
    St#{watched := maps:merge(W, maps:from_list([{erlang:monitor(process, Pid), {Id, Pid}} || {Id, Pid} <- New]))}.
