%%% @doc Execute toolkit benchmark (`make bench', or `sh bench/run.sh execute_bench'); not a test,
%%% nothing here asserts a time.
%%%
%%% Side by side in one run on this machine (the machine is shared with other builds, and single
%%% runs move by 2x: every figure is the median of ?ROUNDS rounds run interleaved, ratios the
%%% median of the per-round ratios, with their range):
%%% <ul>
%%%   <li>circuit breaker `ask' per second: {@link autonomic_breaker:ask/1} (an ETS read in the
%%%       caller) against a `gen_server' breaker (`bench_gen_breaker', a call per ask), with one
%%%       caller (one core) and with one caller per scheduler; a bare `ets:lookup_element/3' on a
%%%       table of the same kind shows what the read itself costs;</li>
%%%   <li>cost per call of `autonomic_shed:admit/1' (off, and shedding 50% with priorities),
%%%       `autonomic:feature_enabled/1' (registered and unregistered feature) and
%%%       `autonomic_bucket:take/1';</li>
%%%   <li>restart latency of `supervisor_controller:restart_child/3' for quick, full and cold on a
%%%       supervisor with 5 workers, against the bare `supervisor' calls a quick restart makes.</li>
%%% </ul>
-module(execute_bench).

-export([main/0]).

-define(ROUNDS, 7).
-define(ASKS, 3000000).
-define(GEN_ASKS, 150000).
-define(CALLS, 2000000).
-define(RESTARTS, 300).
-define(WORKERS, 5).

main() ->
    Dir = filename:join("/tmp", "autonomic-execute-bench-" ++ os:getpid()),
    ok = application:load(autonomic),
    ok = application:load(autonomic_monitor),
    ok = application:load(autonomic_execute),
    ok = application:set_env(autonomic, data_dir, Dir),
    ok = application:set_env(autonomic_monitor, metrics_port, 0),
    ok = application:set_env(autonomic_execute, restart_cooldown_ms, 0),
    {ok, _} = application:ensure_all_started(autonomic_execute),
    io:format("execute benchmark: ~b schedulers online~n~n", [erlang:system_info(schedulers_online)]),
    try
        breaker(),
        per_call(),
        restarts()
    after
        _ = application:stop(autonomic_execute),
        _ = file:del_dir_r(Dir)
    end,
    ok.

%%% Breaker asks

breaker() ->
    ok = autonomic_breaker:install(bench, #{threshold => 5}),
    {ok, Gen} = bench_gen_breaker:start(),
    %% The same kind of table as the breakers' (plain: see autonomic_execute_config).
    Tab = ets:new(bench_tab, [public, set]),
    true = ets:insert(Tab, {bench, closed, 0, undefined, none, #{}, monotonic}),
    Scheds = erlang:system_info(schedulers_online),
    Ask = fun(N) -> ask_loop(N) end,
    GenAsk = fun(N) -> gen_loop(Gen, N) end,
    Bare = fun(N) -> ets_loop(Tab, N) end,
    Rounds = [begin
                  A1 = rate(?ASKS, Ask, 1), G1 = rate(?GEN_ASKS, GenAsk, 1), B1 = rate(?ASKS, Bare, 1),
                  AN = rate(?ASKS, Ask, Scheds), GN = rate(?GEN_ASKS, GenAsk, Scheds), BN = rate(?ASKS, Bare, Scheds),
                  {A1, G1, B1, AN, GN, BN, A1 / G1, AN / GN}
              end || _ <- lists:seq(1, ?ROUNDS)],
    Col = fun(I) -> [element(I, R) || R <- Rounds] end,
    io:format("circuit breaker, closed: asks per second (median of ~b rounds)~n", [?ROUNDS]),
    io:format("  ~-38s ~14s ~16s~n", ["", "1 caller", io_lib:format("~b callers", [Scheds])]),
    [io:format("  ~-38s ~12.2f M ~14.2f M~n", [Name, median(Col(I)) / 1.0e6, median(Col(J)) / 1.0e6])
     || {Name, I, J} <- [{"autonomic_breaker:ask/1 (ETS read)", 1, 4},
                         {"gen_server breaker (a call per ask)", 2, 5},
                         {"bare ets:lookup_element/3", 3, 6}]],
    io:format("  ask / gen_server, 1 caller: ~.1fx (rounds ~.1f..~.1f); ~b callers: ~.1fx (~.1f..~.1f)~n",
              [median(Col(7)), lists:min(Col(7)), lists:max(Col(7)), Scheds, median(Col(8)),
               lists:min(Col(8)), lists:max(Col(8))]),
    %% Open: the answer needs the deadline (the whole row and the clock).
    [ok = autonomic_breaker:melt(bench) || _ <- lists:seq(1, 5)],
    blown = autonomic_breaker:ask(bench),
    Open = median([rate(?ASKS div 2, Ask, 1) || _ <- lists:seq(1, ?ROUNDS)]),
    io:format("  autonomic_breaker:ask/1 while open:   ~12.2f M~n~n", [Open / 1.0e6]),
    exit(Gen, kill).

median(L) ->
    lists:nth((length(L) + 1) div 2, lists:sort(L)).

ask_loop(0) -> ok;
ask_loop(N) -> _ = autonomic_breaker:ask(bench), ask_loop(N - 1).

gen_loop(_Gen, 0) -> ok;
gen_loop(Gen, N) -> ok = bench_gen_breaker:ask(Gen), gen_loop(Gen, N - 1).

ets_loop(_Tab, 0) -> ok;
ets_loop(Tab, N) -> closed = ets:lookup_element(Tab, bench, 2), ets_loop(Tab, N - 1).

%% Calls per second with Callers processes each making N calls at once.
rate(N, Fun, Callers) ->
    Parent = self(),
    Pids = [spawn_link(fun() -> receive go -> ok end, Fun(N), Parent ! {done, self()} end) || _ <- lists:seq(1, Callers)],
    T0 = erlang:monotonic_time(nanosecond),
    [P ! go || P <- Pids],
    [receive {done, P} -> ok end || P <- Pids],
    N * Callers / ((erlang:monotonic_time(nanosecond) - T0) / 1.0e9).

%%% Per-call costs

per_call() ->
    ok = autonomic_degrade:register_feature(recommendations, [minimal, emergency]),
    ok = autonomic_bucket:set_rate(<<"bench">>, 1.0e9, 1000000),
    Shed = fun(Setting) -> fun(N) -> {ok, _} = Setting(), admit_loop(N) end end,
    Cases = [
        {"autonomic_shed:admit/1, shedding off", Shed(fun autonomic_shed:clear/0)},
        {"autonomic_shed:admit/1, shedding 50%", Shed(fun() -> autonomic_shed:set(50, 5) end)},
        {"autonomic:feature_enabled/1, registered", fun(N) -> feature_loop(recommendations, N) end},
        {"autonomic:feature_enabled/1, unregistered", fun(N) -> feature_loop(unknown_feature, N) end},
        {"autonomic_bucket:take/1 (GCRA, admitting)", fun(N) -> take_loop(N) end},
        {"empty loop (the loops' own cost)", fun(N) -> empty_loop(N) end}
    ],
    %% Interleaved rounds: every case in every round.
    Rounds = [[1.0e9 / rate(?CALLS, F, 1) || {_, F} <- Cases] || _ <- lists:seq(1, ?ROUNDS)],
    io:format("cost per call, 1 caller (ns, median of ~b rounds)~n", [?ROUNDS]),
    lists:foreach(fun({I, {Name, _}}) ->
                      io:format("  ~-44s ~8.1f~n", [Name, median([lists:nth(I, R) || R <- Rounds])])
                  end, lists:zip(lists:seq(1, length(Cases)), Cases)),
    {ok, _} = autonomic_shed:clear(),
    io:format("~n").

admit_loop(0) -> ok;
admit_loop(N) -> _ = autonomic_shed:admit(N rem 10), admit_loop(N - 1).

feature_loop(_F, 0) -> ok;
feature_loop(F, N) -> true = autonomic:feature_enabled(F), feature_loop(F, N - 1).

take_loop(0) -> ok;
take_loop(N) -> true = autonomic_bucket:take(<<"bench">>), take_loop(N - 1).

empty_loop(0) -> ok;
empty_loop(N) -> empty_loop(N - 1).

%%% Restarts

restarts() ->
    Top = bench_restart_sup:start_tree(?WORKERS),
    io:format("restart latency, supervisor with ~b workers, ~b restarts each (us)~n", [?WORKERS, ?RESTARTS]),
    io:format("  ~-48s ~8s ~8s ~8s ~8s~n", ["", "mean", "p50", "p99", "max"]),
    Quick = fun() -> {ok, _} = supervisor_controller:restart_child(bench_mid, 1, quick) end,
    Full = fun() -> {ok, _} = supervisor_controller:restart_child(bench_mid, 1, full) end,
    Cold = fun() -> {ok, _} = supervisor_controller:restart_child(bench_mid, 1, cold) end,
    Bare = fun() ->
               Sup = whereis(bench_mid),
               ok = supervisor:terminate_child(Sup, 1),
               {ok, _} = supervisor:restart_child(Sup, 1)
           end,
    [latency(Name, F) || {Name, F} <- [{"quick: supervisor_controller (verified)", Quick},
                                       {"quick: bare terminate_child + restart_child", Bare},
                                       {"full: supervisor_controller (5 children)", Full},
                                       {"cold: supervisor_controller (through its parent)", Cold}]],
    ok = sys:terminate(Top, shutdown).

latency(Name, Fun) ->
    Fun(),
    Us = lists:sort([begin
                         T0 = erlang:monotonic_time(nanosecond),
                         Fun(),
                         (erlang:monotonic_time(nanosecond) - T0) / 1000
                     end || _ <- lists:seq(1, ?RESTARTS)]),
    Pct = fun(P) -> lists:nth(max(1, round(P * length(Us))), Us) end,
    io:format("  ~-48s ~8.1f ~8.1f ~8.1f ~8.1f~n", [Name, lists:sum(Us) / length(Us), Pct(0.5), Pct(0.99), lists:last(Us)]).
