%%% @doc The small supervised workload the loop's suite runs on every peer node (not the chaos
%%% work's example application): a service `wl' whose supervisor is a transient child of
%%% `loop_wl_top' (so a worker crashing past `loop_wl_sup''s restart intensity leaves the service
%%% down until someone restarts it), a backend `wl_db' with two targets and a health check, and
%%% a tenant admission loop that feeds the governor (a flooding tenant drives it to intervene).
%%%
%%% ```
%%% loop_wl_top (one_for_one)
%%%   loop_wl_sup (transient; one_for_one, 2 restarts in 5 s)   service wl
%%%     w1, w2 (loop_wl worker: a gen_server; init sleeps {loop_wl, init_delay} ms)
%%%   loop_wl_db_primary, loop_wl_db_secondary                  the backend's targets
%%%   loop_wl_tenants                                           tenant admission
%%% '''
-module(loop_wl).

-export([start_api/0, start_flaky/0, stop_service/2, crash/1, collect_events/0, events/0]).
-export([start_kv/0, stop_kv/0, kv_check/1, repair_target/1]).
-export([start/0, crash_service/0, crash_service/1, pids/0, healthy/0, db_check/0, break_target/1, flood/2, stop_flood/1, set_init_delay/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, start_worker/1, start_flaky_worker/0, start_db/1, start_tenants/0]).

%%% Setup and control (called on the peer through peer:call)

%% @doc Starts the workload on this node and registers it with the loop; returns once running.
start() ->
    Self = self(),
    spawn(fun() ->
                  {ok, Top} = supervisor:start_link({local, loop_wl_top}, ?MODULE, top),
                  unlink(Top),
                  Self ! started
          end),
    receive started -> ok after 10000 -> error(workload_not_started) end,
    ok = autonomic_backends:register(wl_db, [loop_wl_db_primary, loop_wl_db_secondary], loop_wl_db_primary),
    ok = mape_k_monitor:register_check(wl_db_check, {?MODULE, db_check, []},
                                       #{interval => 200, timeout => 150, failures_before_down => 2}),
    ok = autonomic_loop:register_service(wl, #{supervisor => loop_wl_sup, parent => loop_wl_top,
                                               backend => wl_db, checks => [wl_db_check], tenants => true}).

%% @doc Kills worker w1 until its supervisor gives up (restart intensity reached), then makes
%% workers start slowly (`InitDelayMs' in init) from then on.
crash_service(InitDelayMs) ->
    crash_service(),
    set_init_delay(InitDelayMs).

%% @doc Kills worker w1 until its supervisor gives up (restart intensity reached).
crash_service() ->
    case whereis(loop_wl_sup) of
        undefined -> ok;
        _ ->
            case whereis(w1) of
                undefined -> timer:sleep(5);
                P -> exit(P, kill), timer:sleep(5)
            end,
            crash_service()
    end.

%% @doc The service's supervisor and worker pids (`undefined' when not running).
pids() ->
    {whereis(loop_wl_sup), whereis(w1), whereis(w2)}.

%% @doc Whether the service runs with every worker.
healthy() ->
    case pids() of
        {S, W1, W2} when is_pid(S), is_pid(W1), is_pid(W2) -> true;
        _ -> false
    end.

%% @doc Workers sleep this long in init (a slow start: cache warm-up).
set_init_delay(Ms) ->
    persistent_term:put({?MODULE, init_delay}, Ms).

%% @doc The health check of the backend: its active target answers.
db_check() ->
    {ok, T} = autonomic_backends:target(wl_db),
    case persistent_term:get({?MODULE, broken, T}, false) of
        true -> {error, {broken, T}};
        false -> gen_server:call(T, ping, 100)
    end.

%% @doc Makes a backend target answer nothing useful (its health check fails).
break_target(T) ->
    persistent_term:put({?MODULE, broken, T}, true).

%% @doc A tenant offering `PerTick' requests every 100 ms (bucket: 1,000 per second), on the
%% starter SKU (priority 1: node-wide shedding below 1 leaves it alone, the tenant's own shedding
%% takes its tier).
flood(Tenant, PerTick) ->
    _ = autonomic_entitlements:provision(Tenant, starter),
    _ = autonomic_entitlements:activate(Tenant),
    ok = autonomic_bucket:set_rate(Tenant, 1000, 100),
    gen_server:call(loop_wl_tenants, {flood, Tenant, PerTick}).

%% @doc Stops a tenant's traffic.
stop_flood(Tenant) ->
    gen_server:call(loop_wl_tenants, {stop, Tenant}).

%% @doc Adds the service `api' (supervisor `loop_wl_api_sup', worker `api1'), which depends on
%% `wl'.
start_api() ->
    {ok, _} = supervisor:start_child(loop_wl_top, #{id => loop_wl_api_sup, restart => transient, type => supervisor,
                                                    start => {supervisor, start_link, [{local, loop_wl_api_sup}, ?MODULE, api]}}),
    ok = autonomic_loop:register_service(api, #{supervisor => loop_wl_api_sup, parent => loop_wl_top, depends_on => [wl]}).

%% @doc Adds the service `flaky' whose worker dies 150 ms after every start: its supervisor gives
%% up within half a second, and no restart ever heals it.
start_flaky() ->
    {ok, _} = supervisor:start_child(loop_wl_top, #{id => loop_wl_flaky_sup, restart => transient, type => supervisor,
                                                    start => {supervisor, start_link, [{local, loop_wl_flaky_sup}, ?MODULE, flaky]}}),
    ok = autonomic_loop:register_service(flaky, #{supervisor => loop_wl_flaky_sup, parent => loop_wl_top}).

%% @doc Adds the service `kv': a backend `wl_kv' over the targets `kv_a' (active) and `kv_b',
%% each with a health check of its own (`wl_kv_a', `wl_kv_b') named in `target_checks', the way a
%% workload with one check per store registers (jobs_example does). A down target's check stays
%% down after a failover away from it.
start_kv() ->
    ok = autonomic_backends:register(wl_kv, [kv_a, kv_b], kv_a),
    _ = [ok = mape_k_monitor:register_check(C, {?MODULE, kv_check, [T]},
                                            #{interval => 200, timeout => 150, failures_before_down => 2})
         || {T, C} <- [{kv_a, wl_kv_a}, {kv_b, wl_kv_b}]],
    ok = autonomic_loop:register_service(kv, #{supervisor => loop_wl_top, backend => wl_kv,
                                               checks => [wl_kv_a, wl_kv_b],
                                               target_checks => #{kv_a => wl_kv_a, kv_b => wl_kv_b}}).

%% @doc Removes the service `kv', its checks and its backend; repairs its targets.
stop_kv() ->
    ok = autonomic_loop:unregister_service(kv),
    _ = [ok = mape_k_monitor:unregister_check(C) || C <- [wl_kv_a, wl_kv_b]],
    _ = [repair_target(T) || T <- [kv_a, kv_b]],
    _ = autonomic_backends:unregister(wl_kv),
    ok.

%% @doc The health check of one `wl_kv' target: up unless broken.
kv_check(T) ->
    case persistent_term:get({?MODULE, broken, T}, false) of
        true -> {error, {broken, T}};
        false -> ok
    end.

%% @doc Undoes {@link break_target/1}.
repair_target(T) ->
    _ = persistent_term:erase({?MODULE, broken, T}),
    ok.

%% @doc Unregisters a service and removes its supervisor from the top supervisor.
stop_service(Name, Sup) ->
    ok = autonomic_loop:unregister_service(Name),
    _ = supervisor:terminate_child(loop_wl_top, Sup),
    _ = supervisor:delete_child(loop_wl_top, Sup),
    ok.

%% @doc Kills a worker's supervisor's worker until the supervisor gives up.
crash(Sup) ->
    case whereis(Sup) of
        undefined -> ok;
        _ ->
            _ = [exit(P, kill) || {_, P, _, _} <- catch supervisor:which_children(Sup), is_pid(P)],
            timer:sleep(5),
            crash(Sup)
    end.

%% @doc Starts a process on this node that keeps every cluster event it receives.
collect_events() ->
    Self = self(),
    Pid = spawn(fun() ->
                        ok = autonomic_events:subscribe(cluster),
                        Self ! subscribed,
                        (fun Loop(Acc) ->
                             receive
                                 {autonomic_event, E} -> Loop([E | Acc]);
                                 {get, From} -> From ! {events, lists:reverse(Acc)}, Loop(Acc)
                             end
                         end)([])
                end),
    register(loop_wl_events, Pid),
    receive subscribed -> ok after 5000 -> error(not_subscribed) end.

%% @doc The events the collector kept, oldest first.
events() ->
    loop_wl_events ! {get, self()},
    receive {events, L} -> L after 5000 -> error(no_events) end.

%%% Supervisors

init(top) ->
    {ok, {#{strategy => one_for_one, intensity => 20, period => 10},
          [#{id => loop_wl_sup, start => {supervisor, start_link, [{local, loop_wl_sup}, ?MODULE, wl]},
             restart => transient, type => supervisor},
           #{id => loop_wl_db_primary, start => {?MODULE, start_db, [loop_wl_db_primary]}},
           #{id => loop_wl_db_secondary, start => {?MODULE, start_db, [loop_wl_db_secondary]}},
           #{id => loop_wl_tenants, start => {?MODULE, start_tenants, []}}]}};
init(api) ->
    {ok, {#{strategy => one_for_one, intensity => 2, period => 5}, [#{id => api1, start => {?MODULE, start_worker, [api1]}}]}};
init(flaky) ->
    {ok, {#{strategy => one_for_one, intensity => 2, period => 5}, [#{id => flaky1, start => {?MODULE, start_flaky_worker, []}}]}};
init(wl) ->
    {ok, {#{strategy => one_for_one, intensity => 2, period => 5},
          [#{id => w1, start => {?MODULE, start_worker, [w1]}},
           #{id => w2, start => {?MODULE, start_worker, [w2]}}]}};
%% gen_server: a worker, a db target or the tenant loop.
init({worker, _Name}) ->
    timer:sleep(persistent_term:get({?MODULE, init_delay}, 0)),
    {ok, #{}};
init(db) ->
    {ok, #{}};
init(tenants) ->
    erlang:send_after(100, self(), tick),
    {ok, #{floods => #{}, reported => #{}}}.

start_worker(Name) -> gen_server:start_link({local, Name}, ?MODULE, {worker, Name}, []).
start_flaky_worker() ->
    Pid = spawn_link(fun() -> timer:sleep(150), exit(flaky) end),
    {ok, Pid}.
start_db(Name) -> gen_server:start_link({local, Name}, ?MODULE, db, []).
start_tenants() -> gen_server:start_link({local, loop_wl_tenants}, ?MODULE, tenants, []).

handle_call(ping, _From, S) ->
    {reply, ok, S};
handle_call({flood, T, N}, _From, #{floods := F} = S) ->
    {reply, ok, S#{floods := maps:put(T, N, F)}};
handle_call({stop, T}, _From, #{floods := F} = S) ->
    {reply, ok, S#{floods := maps:remove(T, F)}};
handle_call(_, _From, S) ->
    {reply, {error, unknown}, S}.

handle_cast(_, S) ->
    {noreply, S}.

%% Every 100 ms each tenant offers its requests; what the bucket and the shedding admit is its
%% load (capacity: 600 requests per second), fed to its governor. At intervene or worse the
%% service reports a flood (at most once a second per tenant).
handle_info(tick, #{floods := F, reported := R} = S) ->
    erlang:send_after(100, self(), tick),
    Now = erlang:monotonic_time(millisecond),
    R1 = maps:fold(fun(T, N, RAcc) ->
                           Admitted = length([1 || _ <- lists:seq(1, N), autonomic_bucket:take(T) =:= true,
                                                   autonomic_shed:admit(1)]),
                           Load = min(94, Admitted * 10 * 100 / 600),
                           {ok, State, _Action} = autonomic:transition(T, {signal, cpu, Load}),
                           Due = case maps:find(T, RAcc) of
                               error -> true;
                               {ok, Last} -> Now - Last > 1000
                           end,
                           case lists:member(State, [intervene, degrade, refuse]) andalso Due of
                               true ->
                                   ok = mape_k_monitor:report_failure(#{kind => tenant_flood, tenant => T, service => wl, state => State}),
                                   maps:put(T, Now, RAcc);
                               false -> RAcc
                           end
                   end, R, F),
    {noreply, S#{reported := R1}};
handle_info(_, S) ->
    {noreply, S}.
