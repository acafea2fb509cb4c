%%% @doc The monitor application: checks its configuration, declares its metrics and the
%%% scrape-time collector (phi per peer), and starts {@link autonomic_monitor_sup}. A bad key
%%% stops the start with `{invalid_config, Key, Value}'.
-module(autonomic_monitor_app).
-behaviour(application).

-export([start/2, prep_stop/1, stop/1]).

-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    case mape_k_config:validate() of
        ok ->
            ok = declare_metrics(),
            autonomic_monitor_sup:start_link();
        {error, _} = Error ->
            Error
    end.

-spec prep_stop(term()) -> term().
prep_stop(State) ->
    ok = autonomic_metrics:unregister_collector(monitor),
    State.

-spec stop(term()) -> ok.
stop(_State) ->
    ok.

declare_metrics() ->
    Metrics = [
        {autonomic_partitioned, gauge, "1 when this node sees the cluster partitioned, else 0."},
        {autonomic_partition_groups, gauge, "Groups of nodes that see each other, as this node knows."},
        {autonomic_memory_bytes, gauge, "Memory allocated by the VM, by type (erlang:memory/0)."},
        {autonomic_memory_limit_bytes, gauge, "Memory limit in force (configured, cgroup or host total)."},
        {autonomic_run_queue_length, gauge, "Processes and ports ready to run, all run queues."},
        {autonomic_scheduler_utilization, gauge, "Scheduler utilization over the last sample interval (0..1)."},
        {autonomic_system_in_use, gauge, "Processes, ports and atoms in use."},
        {autonomic_system_limit, gauge, "Limits of processes, ports and atoms."},
        {autonomic_mailbox_max_length, gauge, "Length of the longest mailbox on the node."},
        {autonomic_disk_used_percent, gauge, "Disk use per mount point (disksup)."},
        {autonomic_cpu_used_percent, gauge, "Host CPU use (cpu_sup)."},
        {autonomic_resource_used_percent, gauge, "Use of each resource with a threshold, in percent of its limit."},
        {autonomic_resource_exhausted, gauge, "1 while a resource is over its threshold (until it is hysteresis points below)."},
        {autonomic_health_check_up, gauge, "1 when the backend's last verdict is up, else 0."},
        {autonomic_health_check_runs_total, counter, "Health check runs by result."},
        {autonomic_health_check_duration_seconds, histogram, "Health check run time."},
        {autonomic_ingest_signals_total, counter, "Ingested signals forwarded to a governor (accepted) or dropped as duplicates."},
        {autonomic_ingest_rejected_total, counter, "Ingested signals rejected, by reason."}
    ],
    lists:foreach(fun({N, T, H}) -> ok = autonomic_metrics:declare(N, T, H) end, Metrics),
    autonomic_metrics:register_collector(monitor, fun collect/0).

%% Scrape-time figures from the failure detector.
collect() ->
    Peers = try mape_k_heartbeat:peers() catch exit:_ -> #{} end,
    Rows = lists:sort(maps:to_list(Peers)),
    [
        {autonomic_peer_phi, gauge, "phi-accrual suspicion level of each peer (suspected at the threshold).",
         [{#{peer => P}, Phi} || {P, #{phi := Phi}} <- Rows]},
        {autonomic_peer_suspected, gauge, "1 while the detector suspects the peer, else 0.",
         [{#{peer => P}, case S of true -> 1; false -> 0 end} || {P, #{suspected := S}} <- Rows]},
        {autonomic_peer_heartbeats_received_total, counter, "Heartbeats received from each peer since it connected.",
         [{#{peer => P}, R} || {P, #{received := R}} <- Rows]},
        {autonomic_phi_threshold, gauge, "phi at which a peer is suspected.",
         [{#{}, mape_k_config:get(phi_threshold)}]}
    ].
