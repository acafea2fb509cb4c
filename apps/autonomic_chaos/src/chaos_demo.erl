%%% @doc The main job: a local 5-node cluster running the jobs workload (and the MAPE-K loop
%%% when it is built), chaos injecting real faults at an accelerated schedule, live progress,
%%% then the chaos report, SLO compliance, the workload's audit (no acknowledged job lost) and
%%% every node's ledger verification; the JSON report is written to a file. Every node it
%%% started is stopped at the end, and goes down with this node if it is interrupted.
%%%
%%% `make demo' runs it through `scripts/chaos_demo.escript'; tests call {@link run/1}.
%%%
%%% Options: `duration_ms' (120,000), `interval_ms' (5,000), `seed' (the policy's), `size' (5),
%%% `dir' (a fresh directory under the system's temp dir), `report' (the JSON file, default
%%% `chaos_report.json' in `dir'), `rate' (jobs/s per node, 20), `warmup_ms' (5,000: the
%%% baseline before the first fault), `progress' (true: print every 5 s), `weights',
%%% `max_concurrent', `safe_mode', `pause_on_alert', `require_approval', `metrics_port' (this
%%% node's /metrics), `on_finish' (a fun run after the report, while everything still runs).
-module(chaos_demo).

-export([run/1, start/1, finish/1, audit/0, stop_all/1]).

-define(LOG, #{domain => [autonomic, chaos]}).

%% @doc Runs the whole demo and returns the result map: `report', `audit', `ledger',
%% `report_file'.
-spec run(map()) -> map().
run(Opts) ->
    {ok, Ctx} = start(Opts),
    try
        ok = wait_done(Opts),
        Result = finish(Ctx),
        _ = [F() || F <- [maps:get(on_finish, Opts, fun() -> ok end)]],
        Result
    after
        stop_all(Ctx)
    end.

%% @doc Starts the cluster, the tracker and the orchestrator; returns the context for
%% {@link finish/1}.
-spec start(map()) -> {ok, map()}.
start(Opts) ->
    Dir = maps:get(dir, Opts, filename:join(temp_dir(), "autonomic_demo_" ++ os:getpid())),
    ok = filelib:ensure_path(Dir),
    {ok, Started} = controller(Dir, Opts),
    say(Opts, "starting ~b nodes (data in ~s)...~n", [maps:get(size, Opts, 5), Dir]),
    T0 = erlang:monotonic_time(millisecond),
    {ok, _} = chaos_cluster:start_link(#{size => maps:get(size, Opts, 5), dir => Dir,
                                         rate => maps:get(rate, Opts, 20), env => maps:get(env, Opts, [])}),
    Nodes = chaos_cluster:nodes(),
    say(Opts, "cluster up in ~b ms: ~p~n  workload stores: primary ~p, secondary ~p; loop: ~s~n",
        [erlang:monotonic_time(millisecond) - T0, Nodes, hd(Nodes), hd(tl(Nodes)), loop_state(hd(Nodes))]),
    {ok, _} = slo_tracker:start_link(#{}),
    Warmup = maps:get(warmup_ms, Opts, 5000),
    Sched = maps:with([interval_ms, duration_ms, seed, weights, max_concurrent, safe_mode, pause_on_alert,
                       require_approval], Opts),
    {ok, _} = chaos_orchestrator:start_link(Sched#{start_after_ms => Warmup,
                                                   duration_ms => maps:get(duration_ms, Opts, 120000),
                                                   interval_ms => maps:get(interval_ms, Opts, 5000)}),
    say(Opts, "measuring the baseline for ~b ms, then chaos for ~b ms, one fault every ~b ms (seed ~p)~n",
        [Warmup, maps:get(duration_ms, Opts, 120000), maps:get(interval_ms, Opts, 5000),
         maps:get(seed, chaos_orchestrator:status())]),
    {ok, #{dir => Dir, opts => Opts, started => Started}}.

%% This node: distributed (the peers need it), running autonomic and its monitor for the
%% tracker's metrics and /metrics (`metrics_port', default the monitor's).
controller(Dir, Opts) ->
    _ = case node() of
        nonode@nohost ->
            _ = os:cmd("epmd -daemon"),
            {ok, _} = net_kernel:start(list_to_atom("autonomic_demo_" ++ os:getpid()), #{name_domain => shortnames});
        _ -> ok
    end,
    _ = case lists:keymember(autonomic, 1, application:which_applications()) of
        true -> ok;
        false ->
            _ = application:load(autonomic),
            ok = application:set_env(autonomic, data_dir, filename:join(Dir, "controller"))
    end,
    _ = case maps:find(metrics_port, Opts) of
        {ok, Port} -> _ = application:load(autonomic_monitor),
                      application:set_env(autonomic_monitor, metrics_port, Port);
        error -> ok
    end,
    application:ensure_all_started(autonomic_monitor).

loop_state(Node) ->
    case catch erpc:call(Node, autonomic_loop, coordinator, [], 2000) of
        {ok, C} -> io_lib:format("running, coordinator ~p", [C]);
        _ -> "not running (the workload recovers by itself)"
    end.

wait_done(Opts) ->
    timer:sleep(1000),
    #{state := S} = Status = chaos_orchestrator:status(),
    case S of
        done -> ok;
        _ ->
            _ = maps:get(progress, Opts, true) andalso progress(Status),
            wait_done(Opts)
    end.

progress(#{injected := I, recovered := R, failed := F, active := A}) ->
    case erlang:system_time(second) rem 5 of
        0 ->
            Sum = catch slo_tracker:summary(),
            Avail = case Sum of #{availability := Av} -> io_lib:format("~.3f%", [Av * 100]); _ -> "-" end,
            Tput = case Sum of #{throughput_jobs_per_second := T} when is_number(T) -> integer_to_list(round(T)); _ -> "-" end,
            io:format("  [~s] faults ~b (active ~b), recovered ~b, failed ~b, availability ~s, ~s jobs/s~n",
                      [calendar:system_time_to_rfc3339(erlang:system_time(second)), I, A, R, F, Avail, Tput]);
        _ ->
            ok
    end.

%% @doc Drains the queue, audits the workload, verifies every ledger, prints and writes the
%% report.
-spec finish(map()) -> map().
finish(#{dir := Dir, opts := Opts}) ->
    Report = chaos_orchestrator:report(),
    %% Let the queue drain (clients stopped) before the audit.
    _ = [catch erpc:call(N, supervisor, terminate_child, [jobs_example_sup, jobs_client], 5000) || N <- chaos_cluster:live()],
    Audit = drain_and_audit(30000),
    Ledger = maps:from_list([{N, catch erpc:call(N, autonomic_ledger, verify, [], 30000)} || N <- chaos_cluster:live()]),
    File = maps:get(report, Opts, filename:join(Dir, "chaos_report.json")),
    Full = Report#{audit => maps:without([lost_ids], Audit), ledger => maps:map(fun(_, V) -> fmt(V) end, Ledger)},
    ok = file:write_file(File, chaos_report:to_json(Full)),
    say(Opts, "~n~s", [chaos_report:to_text(Report)]),
    say(Opts, "  jobs: ~b acknowledged, ~b completed, ~b lost~n", [maps:get(acked, Audit), maps:get(completed, Audit), maps:get(lost, Audit)]),
    say(Opts, "  ledger verification: ~s~n", [case lists:all(fun(V) -> V =:= ok end, maps:values(Ledger)) of
                                                  true -> io_lib:format("ok on all ~b nodes", [maps:size(Ledger)]);
                                                  false -> io_lib:format("~p", [Ledger])
                                              end]),
    say(Opts, "  JSON report: ~s~n", [File]),
    #{report => Report, audit => Audit, ledger => Ledger, report_file => File}.

fmt(ok) -> ok;
fmt(V) -> iolist_to_binary(io_lib:format("~0p", [V])).

drain_and_audit(Left) ->
    A = audit(),
    case A of
        #{lost := 0} -> A;
        _ when Left =< 0 -> A;
        _ -> timer:sleep(1000), drain_and_audit(Left - 1000)
    end.

%% @doc The workload's audit: every job any node's client had acknowledged (their ack logs,
%% read as files, so a node killed with `kill -9' still counts) against the jobs done in either
%% store.
-spec audit() -> map().
audit() ->
    Dir = chaos_cluster:dir(),
    Acked = lists:append([Ids || N <- chaos_cluster:nodes(),
                                 {ok, Ids} <- [jobs_example:read_ack_log(filename:join([Dir, atom_to_list(N), "jobs_acked.log"]))]]),
    [P, S | _] = chaos_cluster:nodes(),
    Done = lists:append([Ids || N <- [P, S], Ids <- [catch erpc:call(N, jobs_example, done_ids, [], 30000)], is_list(Ids)]),
    jobs_example:audit(Acked, Done).

%% @doc Stops the orchestrator, the tracker, the cluster and the applications the demo started
%% on this node.
-spec stop_all(map()) -> ok.
stop_all(#{started := Started}) ->
    _ = [catch M:stop() || M <- [chaos_orchestrator, slo_tracker]],
    _ = (catch chaos_cluster:stop()),
    _ = [application:stop(A) || A <- lists:reverse(Started)],
    ok.

say(Opts, Fmt, Args) ->
    case maps:get(progress, Opts, true) of
        true -> io:format(Fmt, Args);
        false -> logger:notice(Fmt, Args, ?LOG)
    end.

temp_dir() ->
    case os:getenv("TMPDIR") of
        false -> "/tmp";
        T -> T
    end.
