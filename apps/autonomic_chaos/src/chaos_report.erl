%%% @doc The chaos report (the seed's shape), pure: from the orchestrator's faults and the SLO
%%% tracker's summary, the totals (events, successful and failed recoveries, undetected), mean
%%% and p99 time to detect and to recover (overall and per scenario), max degradation,
%%% availability, SLO compliance, and every event with its timeline; as JSON and as text.
-module(chaos_report).

-export([build/2, to_json/1, to_text/1]).

%% @doc Builds the report. `Slo' is {@link slo_tracker:summary/0} (may be empty) plus `seed'.
-spec build([map()], map()) -> map().
build(Faults, Slo) ->
    Done = [F || F <- Faults, maps:get(outcome, F, undefined) =/= undefined],
    Recovered = [F || #{outcome := recovered} = F <- Done],
    Failed = [F || #{outcome := failed} = F <- Done],
    Scenarios = lists:usort([S || #{scenario := S} <- Faults]),
    #{seed => maps:get(seed, Slo, undefined),
      total_events => length(Faults),
      successful_recoveries => length(Recovered),
      failed_recoveries => length(Failed),
      undetected => length([F || #{detected_at := undefined} = F <- Done]),
      recovery_success_rate => case Done of [] -> undefined; _ -> length(Recovered) / length(Done) end,
      mttd_ms => times(Done, mttd_ms),
      mttr_ms => times(Recovered, mttr_ms),
      by_scenario => maps:from_list([{S, #{events => length(Fs), recovered => length([x || #{outcome := recovered} <- Fs]),
                                           mttd_ms => times(Fs, mttd_ms),
                                           mttr_ms => times([F || #{outcome := recovered} = F <- Fs], mttr_ms)}}
                                     || S <- Scenarios, Fs <- [[F || #{scenario := S1} = F <- Done, S1 =:= S]]]),
      max_degradation => maps:get(max_degradation, Slo, undefined),
      availability => maps:get(availability, Slo, undefined),
      probes => maps:get(probes, Slo, undefined),
      baseline_jobs_per_second => maps:get(baseline_jobs_per_second, Slo, undefined),
      compliance => maps:get(compliance, Slo, #{}),
      %% Scheduler ticks (100 ms) an injection waited, by reason.
      waits => maps:get(waits, Slo, #{}),
      events => [event(F) || F <- Faults]}.

times(Fs, Key) ->
    Vs = [V || F <- Fs, V <- [maps:get(Key, F, undefined)], is_number(V)],
    #{mean => slo_stats:mean(Vs), p99 => slo_stats:percentile(Vs, 99), max => case Vs of [] -> undefined; _ -> lists:max(Vs) end,
      count => length(Vs)}.

event(F) ->
    I = maps:get(injected_at, F),
    Rel = fun(undefined) -> undefined; (T) -> T - I end,
    #{id => maps:get(id, F), scenario => maps:get(scenario, F), victim => victim(maps:get(victim, F)),
      injected_at => I, outcome => maps:get(outcome, F, undefined),
      detected_by => maps:get(detected_by, F, undefined),
      mttd_ms => maps:get(mttd_ms, F, undefined), mttr_ms => maps:get(mttr_ms, F, undefined),
      healed_ms => Rel(maps:get(healed_at, F, undefined)),
      timeline => [#{at_ms => T - I, what => what(W)} || #{at := T, what := W} <- maps:get(timeline, F, [])]}.

victim({Min, Maj}) -> #{minority => Min, majority => Maj};
victim(V) -> V.

what(W) when is_atom(W) -> W;
what(W) -> iolist_to_binary(io_lib:format("~0p", [W])).

%% @doc The report as JSON.
-spec to_json(map()) -> binary().
to_json(Report) ->
    autonomic_json:encode(nulls(Report)).

nulls(undefined) -> null;
nulls(M) when is_map(M) -> maps:map(fun(_, V) -> nulls(V) end, M);
nulls(L) when is_list(L) -> [nulls(X) || X <- L];
nulls(V) -> V.

%% @doc The report for people.
-spec to_text(map()) -> iodata().
to_text(R) ->
    #{mttd_ms := D, mttr_ms := M} = R,
    [io_lib:format("Chaos report (seed ~p)~n", [maps:get(seed, R)]),
     io_lib:format("  events: ~p, recovered: ~p, failed: ~p, undetected: ~p, recovery success: ~s~n",
                   [maps:get(total_events, R), maps:get(successful_recoveries, R), maps:get(failed_recoveries, R),
                    maps:get(undetected, R), pct(maps:get(recovery_success_rate, R))]),
     io_lib:format("  time to detect:  mean ~s, p99 ~s~n", [ms(maps:get(mean, D)), ms(maps:get(p99, D))]),
     io_lib:format("  time to recover: mean ~s, p99 ~s~n", [ms(maps:get(mean, M)), ms(maps:get(p99, M))]),
     io_lib:format("  availability: ~s over ~p probes; max degradation: ~s (baseline ~s jobs/s)~n",
                   [pct4(maps:get(availability, R)), maps:get(probes, R), pct(maps:get(max_degradation, R)),
                    num(maps:get(baseline_jobs_per_second, R))]),
     io_lib:format("  injections held back (100 ms ticks): ~s~n",
                   [case maps:to_list(maps:get(waits, R, #{})) of
                        [] -> "none";
                        Ws -> lists:join(", ", [io_lib:format("~p ~b", [K, V]) || {K, V} <- lists:sort(Ws)])
                    end]),
     "  per scenario:\n",
     [io_lib:format("    ~-18s ~3b events, ~3b recovered, MTTD mean ~s p99 ~s, MTTR mean ~s p99 ~s~n",
                    [S, E, Rc, ms(maps:get(mean, Sd)), ms(maps:get(p99, Sd)), ms(maps:get(mean, Sr)), ms(maps:get(p99, Sr))])
      || {S, #{events := E, recovered := Rc, mttd_ms := Sd, mttr_ms := Sr}} <- lists:sort(maps:to_list(maps:get(by_scenario, R)))],
     "  SLO compliance:\n",
     [io_lib:format("    ~-17s target ~s, measured ~s: ~s~n", [K, num(T), num(Ms), case Ok of true -> "met"; false -> "VIOLATED" end])
      || {K, #{target := T, measured := Ms, ok := Ok}} <- lists:sort(maps:to_list(maps:get(compliance, R)))]].

ms(undefined) -> "-";
ms(V) -> io_lib:format("~.1f ms", [float(V)]).

pct(undefined) -> "-";
pct(V) -> io_lib:format("~.1f%", [V * 100]).

pct4(undefined) -> "-";
pct4(V) -> io_lib:format("~.3f%", [V * 100]).

num(undefined) -> "-";
num(V) when is_integer(V) -> integer_to_list(V);
num(V) -> io_lib:format("~.4g", [float(V)]).
