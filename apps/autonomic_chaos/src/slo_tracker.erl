%%% @doc The SLO tracker: measures what users of the jobs workload get while chaos runs, and
%%% exports it on `/metrics' of the node it runs on.
%%%
%%% <ul>
%%%   <li>Availability: every `probe_interval_ms' (100) a probe, a real job submitted to a random
%%%       live node of the cluster and processed by a worker, must complete within `deadline_ms'
%%%       (1,000); a node that does not answer is skipped for another within the same
%%%       deadline, as a client with a list of nodes does. Availability is the fraction that
%%%       succeeded.</li>
%%%   <li>Throughput: every second, the jobs completed across the nodes (their counters, by
%%%       incarnation, so a restarted node counts from zero), as a rate over the last 3 s. The
%%%       baseline is the median rate before the first fault; degradation is the drop of the
%%%       rate against it.</li>
%%%   <li>Per fault ({@link record_fault/1}, from the orchestrator): MTTD, MTTR, the largest
%%%       degradation while it was open, recovered or not.</li>
%%%   <li>Compliance against the policy's `slo' ({@link slo_stats:compliance/2}).</li>
%%% </ul>
%%% An SLO alert fires ({@link alert_firing/0}) while availability over the last 5 s is below
%%% the objective; the orchestrator pauses new faults meanwhile (`pause_on_alert').
%%%
%%% Metrics: `autonomic_slo_probes_total{result}', `autonomic_slo_availability',
%%% `autonomic_slo_throughput_jobs_per_second', `autonomic_slo_baseline_jobs_per_second',
%%% `autonomic_slo_degradation' (now), `autonomic_slo_max_degradation',
%%% `autonomic_slo_mttd_seconds', `autonomic_slo_mttr_seconds' (histograms, by scenario),
%%% `autonomic_chaos_faults_total{scenario,outcome}', `autonomic_slo_recovery_success_ratio',
%%% `autonomic_slo_compliance{objective}' (1 met, 0 violated), `autonomic_slo_objective{objective}',
%%% `autonomic_slo_alert_firing'.
-module(slo_tracker).
-behaviour(gen_server).

-export([start_link/1, stop/0, summary/0, alert_firing/0, record_fault/1, baseline/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(ALERT_WINDOW_MS, 5000).
-define(BUCKETS, [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30]).

%% @doc Starts the tracker. Options: `probe_interval_ms', `deadline_ms'.
-spec start_link(map()) -> {ok, pid()} | {error, term()}.
start_link(Opts) ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, Opts, []).

%% @doc Stops it.
-spec stop() -> ok.
stop() ->
    gen_server:stop(?MODULE).

%% @doc Everything measured so far, with compliance.
-spec summary() -> map().
summary() ->
    gen_server:call(?MODULE, summary, 10000).

%% @doc Whether the availability alert fires now.
-spec alert_firing() -> boolean().
alert_firing() ->
    gen_server:call(?MODULE, alert_firing, 5000).

%% @doc The baseline throughput (jobs/s), `undefined' before one is known.
-spec baseline() -> number() | undefined.
baseline() ->
    gen_server:call(?MODULE, baseline).

%% @doc Records a finished fault (`mttd_ms', `mttr_ms', `outcome', `scenario', `injected_at',
%% `recovered_at').
-spec record_fault(map()) -> ok.
record_fault(F) when is_map(F) ->
    gen_server:cast(?MODULE, {fault, F}).

%%% gen_server

%% @doc Declares the metrics and starts probing.
-spec init(map()) -> {ok, map()}.
init(Opts) ->
    declare(),
    Slo = autonomic_policy:get([slo], #{}),
    _ = [autonomic_metrics:set(autonomic_slo_objective, #{objective => K}, V)
         || {K, V} <- maps:to_list(maps:without([window_ms], Slo)), is_number(V)],
    ok = autonomic_metrics:register_collector(?MODULE, fun collect/0),
    self() ! probe,
    self() ! sample,
    {ok, #{interval => maps:get(probe_interval_ms, Opts, 100), deadline => maps:get(deadline_ms, Opts, 1000),
           slo => Slo, ok => 0, failed => 0, recent => [], rates => [], counts => #{},
           baseline => undefined, faults => [], last_sample => now_ms(), first_fault_at => undefined,
           max_degradation => 0.0, degradation => 0.0, deltas => []}}.

declare() ->
    _ = [autonomic_metrics:declare(N, T, H) || {N, T, H} <- [
        {autonomic_slo_probes_total, counter, "Probes of the jobs workload by result (ok, failed)."},
        {autonomic_slo_throughput_jobs_per_second, gauge, "Jobs completed per second across the cluster."},
        {autonomic_slo_baseline_jobs_per_second, gauge, "Throughput before the first fault."},
        {autonomic_slo_degradation, gauge, "Throughput drop against the baseline now (0..1)."},
        {autonomic_slo_max_degradation, gauge, "Largest throughput drop against the baseline (0..1)."},
        {autonomic_slo_mttd_seconds, {histogram, ?BUCKETS}, "Time from a fault's injection to its detection."},
        {autonomic_slo_mttr_seconds, {histogram, ?BUCKETS}, "Time from a fault's injection to its verified recovery."},
        {autonomic_chaos_faults_total, counter, "Faults injected by chaos, by scenario and outcome."},
        {autonomic_slo_recovery_success_ratio, gauge, "Share of faults recovered within their failure mode's recovery time."},
        {autonomic_slo_objective, gauge, "The policy's SLO objectives."}]],
    ok.

%% Computed at scrape time: availability, compliance, alert.
collect() ->
    try summary() of
        #{availability := A, compliance := C, alert_firing := Alert} ->
            [{autonomic_slo_availability, gauge, "Fraction of probes that succeeded within their deadline.", [{#{}, A}]},
             {autonomic_slo_compliance, gauge, "Whether each SLO objective is met (1) or violated (0).",
              [{#{objective => K}, case Ok of true -> 1; false -> 0 end} || {K, #{ok := Ok}} <- maps:to_list(C)]},
             {autonomic_slo_alert_firing, gauge, "1 while availability over the last 5 s is below the objective.",
              [{#{}, case Alert of true -> 1; false -> 0 end}]}]
    catch _:_ -> []
    end.

%% @doc Summary, alert, baseline.
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call(summary, _From, St) ->
    {reply, summarize(St), St};
handle_call(alert_firing, _From, St) ->
    {reply, alert(St), St};
handle_call(baseline, _From, #{baseline := B} = St) ->
    {reply, B, St};
handle_call(_, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @doc A finished fault.
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast({fault, F}, #{faults := Fs} = St) ->
    S = maps:get(scenario, F),
    Outcome = maps:get(outcome, F),
    autonomic_metrics:inc(autonomic_chaos_faults_total, #{scenario => S, outcome => Outcome}),
    _ = [autonomic_metrics:observe(M, #{scenario => S}, V / 1000)
         || {M, K} <- [{autonomic_slo_mttd_seconds, mttd_ms}, {autonomic_slo_mttr_seconds, mttr_ms}],
            V <- [maps:get(K, F, undefined)], is_number(V)],
    Fs1 = [F | Fs],
    Ok = length([x || #{outcome := recovered} <- Fs1]),
    autonomic_metrics:set(autonomic_slo_recovery_success_ratio, #{}, Ok / length(Fs1)),
    FirstAt = case maps:get(first_fault_at, St) of
        undefined -> maps:get(injected_at, F);
        T -> min(T, maps:get(injected_at, F))
    end,
    {noreply, St#{faults := Fs1, first_fault_at := FirstAt}};
handle_cast(_, St) ->
    {noreply, St}.

%% @doc Probes, throughput samples, probe results.
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(probe, #{interval := I, deadline := D} = St) ->
    Self = self(),
    _ = spawn(fun() -> Self ! {probed, now_ms(), probe(D)} end),
    _ = erlang:send_after(I, self(), probe),
    {noreply, St};
handle_info({probed, At, Ok}, #{recent := R} = St) ->
    autonomic_metrics:inc(autonomic_slo_probes_total, #{result => case Ok of true -> ok; false -> failed end}),
    Key = case Ok of true -> ok; false -> failed end,
    Cut = now_ms() - ?ALERT_WINDOW_MS,
    {noreply, St#{Key := maps:get(Key, St) + 1, recent := [{At, Ok} | [X || {T, _} = X <- R, T >= Cut]]}};
handle_info(sample, St) ->
    _ = erlang:send_after(1000, self(), sample),
    {noreply, sample(St)};
handle_info(_, St) ->
    {noreply, St}.

%% @doc Removes the collector.
-spec terminate(term(), map()) -> ok.
terminate(_, _) ->
    autonomic_metrics:unregister_collector(?MODULE).

%%% Internals

probe(Deadline) ->
    End = now_ms() + Deadline,
    Nodes = try chaos_cluster:live() catch exit:_ -> [] end,
    Shuffled = [N || {_, N} <- lists:sort([{rand:uniform(), N} || N <- Nodes])],
    probe_nodes(Shuffled, End).

probe_nodes([], _) -> false;
probe_nodes([N | Rest], End) ->
    Left = End - now_ms(),
    Left > 0 andalso
        case catch erpc:call(N, jobs_example, probe, [Left], Left + 100) of
            ok -> true;
            {error, timeout} -> false;
            _ -> probe_nodes(Rest, End)
        end.

%% Completed jobs per second across the cluster, from each node's counter (per incarnation).
sample(#{counts := C0, rates := Rates, last_sample := Last, first_fault_at := First} = St) ->
    Nodes = try chaos_cluster:live() catch exit:_ -> [] end,
    Stats = [S || N <- Nodes, S <- [catch erpc:call(N, jobs_example, stats, [], 500)], is_map(S)],
    Now = now_ms(),
    Delta = lists:sum([maps:get(completed, S) - maps:get({N, I}, C0, 0)
                       || #{node := N, incarnation := I} = S <- Stats]),
    C1 = maps:merge(C0, maps:from_list([{{N, I}, maps:get(completed, S)} || #{node := N, incarnation := I} = S <- Stats])),
    %% Over the last 3 samples: a node whose counter could not be read in time (a starved
    %% node) has its jobs counted in a later sample, which one sample alone would show as a
    %% drop followed by a spike.
    Deltas = lists:sublist([{Last, Delta} | maps:get(deltas, St, [])], 3),
    Span = Now - lists:min([From || {From, _} <- Deltas]),
    Rate = lists:sum([D || {_, D} <- Deltas]) * 1000 / max(1, Span),
    autonomic_metrics:set(autonomic_slo_throughput_jobs_per_second, #{}, Rate),
    Rates1 = [{Now, Rate} | Rates],
    %% The baseline: the median rate of the samples before the first fault (the first sample,
    %% which counts from zero, excluded).
    Before = [R || {T, R} <- lists:droplast(Rates1), First =:= undefined orelse T < First],
    Baseline = case length(Before) >= 3 of
        true -> slo_stats:percentile(Before, 50);
        false -> maps:get(baseline, St)
    end,
    Deg = slo_stats:degradation(Baseline, Rate),
    _ = Baseline =/= undefined andalso autonomic_metrics:set(autonomic_slo_baseline_jobs_per_second, #{}, Baseline),
    autonomic_metrics:set(autonomic_slo_degradation, #{}, Deg),
    MaxDeg = case First of undefined -> 0.0; _ -> max(Deg, maps:get(max_degradation, St)) end,
    autonomic_metrics:set(autonomic_slo_max_degradation, #{}, MaxDeg),
    St#{counts := C1, rates := lists:sublist(Rates1, 3600), last_sample := Now, deltas := Deltas,
        baseline := Baseline, degradation := Deg, max_degradation := MaxDeg}.

alert(#{recent := R, slo := Slo}) ->
    Cut = now_ms() - ?ALERT_WINDOW_MS,
    Results = [Ok || {T, Ok} <- R, T >= Cut],
    Results =/= [] andalso slo_stats:availability(Results) < maps:get(availability, Slo, 0.999).

summarize(#{ok := Ok, failed := Failed, faults := Fs, slo := Slo, baseline := B,
            max_degradation := MaxDeg, rates := Rates} = St) ->
    Avail = case Ok + Failed of 0 -> 1.0; N -> Ok / N end,
    Mttd = [V || #{mttd_ms := V} <- Fs, is_number(V)],
    Mttr = [V || #{mttr_ms := V} <- Fs, is_number(V)],
    Recovered = length([x || #{outcome := recovered} <- Fs]),
    Success = case Fs of [] -> undefined; _ -> Recovered / length(Fs) end,
    Measured = #{availability => Avail, mttd_ms => slo_stats:mean(Mttd), mttr_ms => slo_stats:mean(Mttr),
                 max_degradation => MaxDeg, recovery_success => Success},
    #{probes => Ok + Failed, probes_ok => Ok, probes_failed => Failed, availability => Avail,
      baseline_jobs_per_second => B, max_degradation => MaxDeg,
      throughput_jobs_per_second => case Rates of [{_, R} | _] -> R; [] -> undefined end,
      faults => length(Fs), recovery_success => Success,
      compliance => slo_stats:compliance(Slo, Measured), alert_firing => alert(St)}.

now_ms() ->
    erlang:system_time(millisecond).
