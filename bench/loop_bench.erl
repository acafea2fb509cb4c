%%% @doc MAPE-K loop benchmark (`make bench', or `sh bench/run.sh loop_bench'); not a test,
%%% nothing here asserts a time.
%%%
%%% Three real peer nodes run the whole of autonomic (the planner C-node included) and the loop
%%% suite's workload (`apps/autonomic_loop/test/loop_wl.erl', compiled here), driven over their
%%% stdio control channels. For each failure kind, `runs' times (default 50) a failure is
%%% injected on a node other than the coordinator's, and the cycle that handled it is read back
%%% from `autonomic:cycles/1' on the coordinator: its phase times (monitor snapshot, analyze,
%%% plan, gate, execute, verify, knowledge, total) and the time from the injection to the
%%% operation's final receipt (what a user would call the time to recover). The phase times are
%%% printed next to the seed's figures (monitor 0.5 s, analyze 1.2 s, plan 0.8 s, total 17.5 s).
%%%
%%% Failure kinds: `process_crash' (a worker killed past its supervisor's restart intensity: a
%%% cold restart), `backend_down' (the active backend target broken: its health check fails,
%%% failover; the next run breaks the other target), `tenant_flood' (a new tenant floods: it is
%%% throttled, which is not enough, then shed; verification windows of 1 s). Node loss is left out: restarting a node 50 times costs minutes, and the quorum
%%% benchmark measures it.
-module(loop_bench).

-export([main/0, main/1]).

-define(SEED, #{detection_ms => 500, analysis_ms => 1200, planning_ms => 800, total_ms => 17500}).

main() -> main(#{}).

main(Opts) ->
    Runs = maps:get(runs, Opts, 50),
    Kinds = maps:get(kinds, Opts, [process_crash, backend_down, tenant_flood]),
    _ = os:cmd("epmd -daemon"),
    ok = logger:set_primary_config(level, error),
    Out = filename:absname(filename:join("bench", "out")),
    [{ok, _} = compile:file(filename:join(["apps", "autonomic_loop", "test", M]), [{outdir, Out}, report])
     || M <- ["loop_wl.erl", "loop_ct.erl"]],
    [{module, _} = code:load_abs(filename:join(Out, M)) || M <- ["loop_wl", "loop_ct"]],
    Dir = filename:join(Out, "loop_data_" ++ os:getpid()),
    io:format("loop benchmark: 3 nodes, ~b runs per failure kind, ~b schedulers, ~b cores~n~n",
              [Runs, erlang:system_info(schedulers_online), erlang:system_info(logical_processors_available)]),
    %% Failures come one after the other for minutes: no cooldown, no incident-rate limit.
    Policy = #{gates => #{cooldown_ms => 0, max_consecutive_failures => 1000, max_incident_rate => 100000},
               %% Short verification windows for the flood (half its recovery time, at least 1 s).
               failure_modes => #{tenant_flood => #{recovery_strategies => [throttle, load_shedding, escalate],
                                                    detection_ms => 1000, recovery_ms => 2000}},
               loop => #{interval_ms => 5000, max_cycle_ms => 60000, lock_ttl_ms => 60000}},
    Env = [{autonomic, policy, Policy}, {autonomic, planner_cnode, true}, {autonomic_execute, restart_cooldown_ms, 0},
           {autonomic_monitor, sample_interval_ms, 59000}, {autonomic_monitor, thresholds, #{cpu => 100}}],
    Cluster = loop_ct:start_cluster(3, #{dir => Dir, env => Env}),
    try
        await(fun() -> element(1, loop_ct:call(hd(Cluster), autonomic_loop, coordinator, [])) =:= ok end, 15000),
        Coord = loop_ct:coordinator(Cluster),
        X = hd([Q || Q <- Cluster, Q =/= Coord]),
        {ok, _} = loop_ct:call(X, autonomic_planner, await_cnode, [10000]),
        Results = [{K, [run(K, I, Coord, X) || I <- lists:seq(1, Runs)]} || K <- Kinds],
        report(Results)
    after
        loop_ct:stop_cluster(Cluster),
        _ = file:del_dir_r(Dir)
    end.

%% One failure, healed: the cycle that handled it and the time to the final receipt.
run(Kind, I, Coord, X) ->
    Node = maps:get(node, X),
    T0 = erlang:system_time(millisecond),
    {Target, Undo} = inject(Kind, I, X, Node),
    Before = [S || {S, _, _} <- loop_ct:final_of(Coord, Target)],
    Final = try await(fun() -> [F || {S, _, _} = F <- loop_ct:final_of(Coord, Target), not lists:member(S, Before)] end, 60000)
            catch error:timeout ->
                    error({not_healed, Kind, I, loop_ct:call(Coord, autonomic_loop, operations, []),
                           loop_ct:call(Coord, autonomic, pending_reviews, [])})
            end,
    [{_, State, #{op := Op, at := At}} | _] = Final,
    Cycle = try await(fun() -> [C || C <- cycles(Coord), lists:member(Op, maps:get(operations, C, []))] end, 10000)
            catch error:timeout -> error({no_cycle, Op, State, cycles(Coord)})
            end,
    Undo(),
    timer:sleep(200),
    (hd(Cycle))#{state => State, recovered_ms => At - T0}.

inject(process_crash, _I, X, Node) ->
    ok = loop_ct:call(X, loop_wl, crash_service, []),
    {{service, Node, wl}, fun() -> await(fun() -> loop_ct:call(X, loop_wl, healthy, []) end, 10000) end};
inject(backend_down, _I, X, Node) ->
    {ok, Active} = loop_ct:call(X, autonomic_backends, target, [wl_db]),
    [Other] = [loop_wl_db_primary, loop_wl_db_secondary] -- [Active],
    %% Only the active target is broken; the other one works again.
    ok = loop_ct:call(X, persistent_term, put, [{loop_wl, broken, Other}, false]),
    ok = loop_ct:call(X, loop_wl, break_target, [Active]),
    {{backend, Node, wl_db}, fun() -> ok end};
inject(tenant_flood, I, X, Node) ->
    Tenant = iolist_to_binary(io_lib:format("bench-~b", [I])),
    %% 1,000 requests per second against a capacity of 600: throttled by half it still
    %% overloads, so the loop sheds next (as in the suite).
    ok = loop_ct:call(X, loop_wl, flood, [Tenant, 100]),
    {{tenant, Node, Tenant},
     fun() ->
             ok = loop_ct:call(X, loop_wl, stop_flood, [Tenant]),
             [loop_ct:call(X, autonomic_actuator, rollback, [R])
              || #{receipt := R} <- lists:reverse(loop_ct:call(X, autonomic_actuator, active, []))],
             ok
     end}.

cycles(Coord) ->
    case loop_ct:call(Coord, autonomic, cycles, [200]) of
        L when is_list(L) -> L;
        _ -> []
    end.

await(Fun, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    (fun Loop() ->
         case catch Fun() of
             R when R =/= false, R =/= [], not is_tuple(R) orelse element(1, R) =/= 'EXIT' -> R;
             _ ->
                 case erlang:monotonic_time(millisecond) > Deadline of
                     true -> error(timeout);
                     false -> timer:sleep(20), Loop()
                 end
         end
     end)().

report(Results) ->
    Phases = [{detection_ms, "monitor (snapshot)"}, {analysis_ms, "analyze"}, {planning_ms, "plan"}, {gate_ms, "gate"},
              {execution_ms, "execute"}, {verify_ms, "verify"}, {knowledge_ms, "knowledge"}, {total_ms, "total (cycle)"},
              {recovered_ms, "failure to final receipt"}],
    lists:foreach(
      fun({Kind, Cycles}) ->
              Done = length([1 || #{state := completed} <- Cycles]),
              io:format("~s: ~b runs, ~b completed~n", [Kind, length(Cycles), Done]),
              io:format("  ~-26s ~9s ~9s ~9s~n", ["phase (ms)", "median", "p99", "seed"]),
              [io:format("  ~-26s ~9s ~9s ~9s~n", [Label, fmt(pct(50, [maps:get(K, C) || C <- Cycles])),
                                                   fmt(pct(99, [maps:get(K, C) || C <- Cycles])),
                                                   case maps:find(K, ?SEED) of {ok, S} -> integer_to_list(S); error -> "" end])
               || {K, Label} <- Phases],
              io:format("~n")
      end, Results).

%% Nearest-rank percentile.
pct(P, L) ->
    S = lists:sort(L),
    lists:nth(max(1, min(length(S), ceil(P / 100 * length(S)))), S).

fmt(V) when is_integer(V) -> integer_to_list(V);
fmt(V) -> float_to_list(float(V), [{decimals, 1}]).
