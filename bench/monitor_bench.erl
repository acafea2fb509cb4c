%%% @doc Monitor benchmark (`make bench', or `sh bench/run.sh monitor_bench'); not a test, nothing
%%% here asserts a time.
%%%
%%% Measures, in one run on this machine, with real peer nodes and real signals:
%%% <ul>
%%%   <li>detection time of a crash (`kill -9') and of a hang (`kill -STOP'), 20 injections each,
%%%       (a) with the monitor (first of `node_down' / `node_suspected' on this node, default
%%%       settings: heartbeat 200 ms, phi 8) and (b) with `net_kernel' alone (its `nodedown',
%%%       `net_ticktime' lowered to 8 s on every node so the run stays short; the default 60 s
%%%       would take 45 to 75 s per hang), and the ratio of the medians;</li>
%%%   <li>the monitor's CPU cost per node in clusters of 5 and 20 nodes: reductions per second of
%%%       the monitor's processes, and the VM's CPU time per second against the same cluster
%%%       without the monitor (peers run with the release's `+sbwt none').</li>
%%% </ul>
-module(monitor_bench).

-export([main/0, main/1]).

-define(INJECTIONS, 20).
-define(MONITOR_PROCS, [mape_k_heartbeat, mape_k_monitor, mape_k_resources, mape_k_checks, mape_k_ingest]).

main() -> main(#{}).

main(Opts) ->
    N = maps:get(injections, Opts, ?INJECTIONS),
    Window = maps:get(cpu_window_ms, Opts, 10000),
    _ = os:cmd("epmd -daemon"),
    io:format("monitor benchmark: ~b injections per fault, ~b schedulers, ~b cores~n~n",
              [N, erlang:system_info(schedulers_online), erlang:system_info(logical_processors_available)]),
    ok = logger:set_primary_config(level, error),

    %% (a) the monitor, default settings.
    ok = start_dist(60),
    ok = application:set_env(autonomic_monitor, metrics_port, none),
    {ok, _} = application:ensure_all_started(autonomic_monitor),
    PhiCrash = crash_runs(N, monitor),
    PhiHang = hang_runs_sequential(N),
    ok = application:stop(autonomic_monitor),

    %% (b) net_kernel alone, net_ticktime 8 s everywhere. Its "not responding" reports are expected.
    ok = start_dist(8),
    ok = logger:set_primary_config(level, critical),
    NkCrash = crash_runs(N, net_kernel),
    NkHang = hang_runs_parallel(N),

    io:format("~nDetection time (ms), ~b injections each~n", [N]),
    io:format("~-40s ~8s ~8s ~8s ~8s~n", ["", "min", "median", "p99", "max"]),
    Rows = [{"crash, monitor (kill -9)", PhiCrash}, {"crash, net_kernel alone", NkCrash},
            {"hang, monitor phi (kill -STOP)", PhiHang}, {"hang, net_kernel alone (ticktime 8 s)", NkHang}],
    [io:format("~-40s ~8b ~8b ~8b ~8b~n", [Name, lists:min(S), pct(S, 50), pct(S, 99), lists:max(S)]) || {Name, S} <- Rows],
    io:format("~nhang: net_kernel median / monitor median = ~.1fx (at net_ticktime 8 s; the default 60 s is 7.5x slower still)~n",
              [pct(NkHang, 50) / max(1, pct(PhiHang, 50))]),
    io:format("crash: both see the TCP connection close; the monitor's node_down is net_kernel's nodedown.~n"),

    %% CPU cost.
    ok = logger:set_primary_config(level, error),
    ok = start_dist(60),
    io:format("~nMonitor CPU cost per node (~b s window, idle cluster, every node on this host)~n", [Window div 1000]),
    io:format("~-8s ~-22s ~22s ~22s ~22s~n", ["nodes", "", "monitor reductions/s", "VM CPU ms/s, monitor", "VM CPU ms/s, without"]),
    [cpu_cost(Size, Window) || Size <- [5, 20]],
    ok.

%%% Detection runs

%% Crash: N peers up at once; each is killed in turn and the detection time measured.
crash_runs(N, Mode) ->
    Peers = start_peers(crash, N, Mode),
    ok = settle(Peers, Mode),
    Times = [begin
                 flush(),
                 T0 = now_ms(),
                 _ = os:cmd("kill -9 " ++ OsPid),
                 T = await_detection(Node, Mode, [node_down, node_suspected], 30000),
                 T - T0
             end || {_, Node, OsPid} <- Peers],
    stop_peers(Peers),
    io:format("crash, ~p: ~w~n", [Mode, Times]),
    Times.

%% Hang with the monitor: 4 peers; each injection stops one, waits for the suspicion, resumes it,
%% waits for the recovery and lets it run for a second.
hang_runs_sequential(N) ->
    Peers = start_peers(hang, 4, monitor),
    ok = settle(Peers, monitor),
    Tuple = list_to_tuple(Peers),
    %% A stopped VM cannot notice its control channel closing: resume every peer whatever
    %% happens, or an interrupted run leaves them stopped forever.
    Times = try [begin
                 {_, Node, OsPid} = element((I rem tuple_size(Tuple)) + 1, Tuple),
                 flush(),
                 T0 = now_ms(),
                 _ = os:cmd("kill -STOP " ++ OsPid),
                 T = await_detection(Node, monitor, [node_suspected, node_down], 60000),
                 _ = os:cmd("kill -CONT " ++ OsPid),
                 _ = await_detection(Node, monitor, [node_recovered], 30000),
                 timer:sleep(1000),
                 T - T0
             end || I <- lists:seq(1, N)]
    after
        resume_all(Peers)
    end,
    stop_peers(Peers),
    io:format("hang, monitor: ~w~n", [Times]),
    Times.

%% Hang with net_kernel alone: N peers, each stopped at a random moment within one tick period
%% (net_kernel checks all connections on one timer, so injections at the same instant would all
%% sample the same phase of it), each timed to its own nodedown. Done in parallel to keep the
%% run short: each takes 6 to 10 s at net_ticktime 8.
hang_runs_parallel(N) ->
    Peers = start_peers(nkhang, N, net_kernel),
    ok = settle(Peers, net_kernel),
    flush(),
    TickPeriod = net_kernel:get_net_ticktime() * 1000 div 4,
    Offsets = lists:sort([{rand:uniform(TickPeriod), P} || P <- Peers]),
    T00 = now_ms(),
    Times = try measure_parallel_hangs(Offsets, T00) after resume_all(Peers) end,
    stop_peers(Peers),
    io:format("hang, net_kernel: ~w~n", [Times]),
    Times.

measure_parallel_hangs(Offsets, T00) ->
    Starts = [begin
                  timer:sleep(max(0, T00 + Offset - now_ms())),
                  T0 = now_ms(),
                  _ = os:cmd("kill -STOP " ++ OsPid),
                  {Node, T0}
              end || {Offset, {_, Node, OsPid}} <- Offsets],
    Downs = await_nodedowns(maps:from_list(Starts), #{}, now_ms() + 60000),
    [maps:get(Node, Downs) - T0 || {Node, T0} <- Starts].

resume_all(Peers) ->
    [os:cmd("kill -CONT " ++ OsPid) || {_, _, OsPid} <- Peers],
    ok.

%% The arrival time of every expected nodedown, in whatever order they come.
await_nodedowns(Expected, Got, _Deadline) when map_size(Expected) =:= map_size(Got) ->
    Got;
await_nodedowns(Expected, Got, Deadline) ->
    receive
        {nodedown, Node} when is_map_key(Node, Expected) -> await_nodedowns(Expected, Got#{Node => now_ms()}, Deadline)
    after max(0, Deadline - now_ms()) ->
        error({no_nodedown, maps:keys(Expected) -- maps:keys(Got)})
    end.

await_detection(Node, monitor, Types, Timeout) ->
    Me = node(),
    receive
        {autonomic_event, #{type := Type, node := Me, detail := #{peer := Node}}} ->
            case lists:member(Type, Types) of
                true -> now_ms();
                false -> await_detection(Node, monitor, Types, Timeout)
            end
    after Timeout ->
        error({no_detection, Node, Types})
    end;
await_detection(Node, net_kernel, _Types, Timeout) ->
    receive
        {nodedown, Node} -> now_ms()
    after Timeout ->
        error({no_nodedown, Node})
    end.

%% Every peer connected and, with the monitor, heard by the detector for two seconds.
settle(Peers, monitor) ->
    ok = autonomic_events:subscribe(local),
    Nodes = [N || {_, N, _} <- Peers],
    ok = wait_until(fun() -> Heard = mape_k_heartbeat:peers(), lists:all(fun(N) -> maps:is_key(N, Heard) end, Nodes) end, 30000),
    timer:sleep(2000);
settle(Peers, net_kernel) ->
    ok = net_kernel:monitor_nodes(true),
    Nodes = [N || {_, N, _} <- Peers],
    ok = wait_until(fun() -> Nodes -- nodes() =:= [] end, 30000),
    timer:sleep(2000).

%%% CPU cost

cpu_cost(Size, Window) ->
    With = cluster_cpu(Size, Window, monitor),
    Without = cluster_cpu(Size, Window, net_kernel),
    Reds = avg([lists:sum(maps:values(R)) || {R, _} <- With]),
    io:format("~-8b ~-22s ~22b ~22.2f ~22.2f~n",
              [Size, "(mean of the peers)", round(Reds), avg([C || {_, C} <- With]), avg([C || {_, C} <- Without])]),
    [io:format("~-8s ~-22s ~22b~n", ["", P, round(avg([maps:get(P, R, 0) || {R, _} <- With]))]) || P <- ?MONITOR_PROCS],
    ok.

%% A cluster of Size nodes (this node and Size - 1 peers); for each peer, the monitor processes'
%% reductions per second and the VM's CPU ms per second over the window.
cluster_cpu(Size, Window, Mode) ->
    Peers = start_peers(cpu, Size - 1, Mode),
    case Mode of
        monitor ->
            ok = application:set_env(autonomic_monitor, metrics_port, none),
            {ok, _} = application:ensure_all_started(autonomic_monitor);
        net_kernel ->
            ok
    end,
    Nodes = [N || {_, N, _} <- Peers],
    ok = wait_until(fun() -> Nodes -- nodes() =:= [] end, 30000),
    timer:sleep(3000),
    Before = [{N, erpc:call(N, fun() -> snapshot() end)} || N <- Nodes],
    timer:sleep(Window),
    After = [{N, erpc:call(N, fun() -> snapshot() end)} || N <- Nodes],
    Result = [{maps:map(fun(K, R1) -> (R1 - maps:get(K, R0, 0)) * 1000 / Window end, R1s), (C1 - C0) * 1000 / Window}
              || {{N, {R0, C0}}, {N, {R1s, C1}}} <- lists:zip(Before, After)],
    stop_peers(Peers),
    _ = application:stop(autonomic_monitor),
    Result.

snapshot() ->
    Reds = maps:from_list([{Name, R} || Name <- ?MONITOR_PROCS, P <- [whereis(Name)], is_pid(P),
                                        {reductions, R} <- [process_info(P, reductions)]]),
    {Runtime, _} = erlang:statistics(runtime),
    {Reds, Runtime}.

%%% Nodes

start_dist(TickTime) ->
    _ = net_kernel:stop(),
    Name = list_to_atom("monitor_bench_" ++ os:getpid()),
    {ok, _} = net_kernel:start(Name, #{name_domain => shortnames, net_ticktime => TickTime}),
    TickTime = net_kernel:get_net_ticktime(),
    ok.

start_peers(Prefix, N, Mode) ->
    Self = self(),
    Pids = [spawn(fun() -> Self ! {started, self(), start_peer(Prefix, Mode)} end) || _ <- lists:seq(1, N)],
    [receive {started, P, Peer} -> Peer after 120000 -> error(peer_start_timeout) end || P <- Pids].

start_peer(Prefix, Mode) ->
    Paths = lists:append([["-pa", P] || P <- code:get_path(), filelib:is_dir(P)]),
    Tick = integer_to_list(net_kernel:get_net_ticktime()),
    {ok, Peer, Node} = peer:start(#{
        name => peer:random_name(Prefix),
        %% The release's scheduler settings (erlang/vm.args): no busy waiting, which on a host
        %% shared by 20 VMs would bill each wake-up with a spin.
        args => ["-setcookie", atom_to_list(erlang:get_cookie()), "-kernel", "net_ticktime", Tick,
                 "-kernel", "logger_level", "error", "+sbwt", "none", "+sbwtdcpu", "none", "+sbwtdio", "none" | Paths],
        connection => standard_io
    }),
    pong = net_adm:ping(Node),
    case Mode of
        monitor ->
            ok = erpc:call(Node, application, set_env, [autonomic_monitor, metrics_port, none]),
            {ok, _} = erpc:call(Node, application, ensure_all_started, [autonomic_monitor]);
        net_kernel ->
            {ok, _} = erpc:call(Node, application, ensure_all_started, [autonomic])
    end,
    {Peer, Node, erpc:call(Node, os, getpid, [])}.

stop_peers(Peers) ->
    [catch peer:stop(P) || {P, _, _} <- Peers],
    ok.

%%% Helpers

pct(Samples, P) ->
    Sorted = lists:sort(Samples),
    lists:nth(max(1, min(length(Sorted), ceil(P / 100 * length(Sorted)))), Sorted).

avg([]) -> 0.0;
avg(L) -> lists:sum(L) / length(L).

flush() ->
    receive {autonomic_event, _} -> flush(); {nodedown, _} -> flush(); {nodeup, _} -> flush() after 0 -> ok end.

wait_until(Fun, Timeout) ->
    Deadline = now_ms() + Timeout,
    (fun Loop() ->
         case Fun() of
             true -> ok;
             false ->
                 case now_ms() > Deadline of
                     true -> error(timeout);
                     false -> timer:sleep(20), Loop()
                 end
         end
     end)().

now_ms() ->
    erlang:monotonic_time(millisecond).
