%%% @doc The SLO tracker's arithmetic, pure: means and percentiles, availability over a window of
%%% probe results, degradation against a baseline, and compliance against the policy's `slo'.
-module(slo_stats).

-export([mean/1, percentile/2, availability/1, degradation/2, compliance/2]).

%% @doc The mean, `undefined' for no values.
-spec mean([number()]) -> float() | undefined.
mean([]) -> undefined;
mean(L) -> lists:sum(L) / length(L).

%% @doc The `P'-th percentile (nearest rank, `P' in (0, 100]), `undefined' for no values.
-spec percentile([number()], number()) -> number() | undefined.
percentile([], _) -> undefined;
percentile(L, P) when P > 0, P =< 100 ->
    S = lists:sort(L),
    Rank = max(1, ceil(P / 100 * length(S))),
    lists:nth(Rank, S).

%% @doc The fraction of probes that succeeded (`[boolean()]'); 1.0 when there were none.
-spec availability([boolean()]) -> float().
availability([]) -> 1.0;
availability(Results) -> length([R || R <- Results, R]) / length(Results).

%% @doc The drop of a throughput against its baseline, in [0, 1]; 0 without a baseline.
-spec degradation(number() | undefined, number()) -> float().
degradation(undefined, _) -> 0.0;
degradation(Baseline, _) when Baseline =< 0 -> 0.0;
degradation(Baseline, Rate) -> float(max(0.0, min(1.0, 1 - Rate / Baseline))).

%% @doc Each objective of the policy's `slo' against what was measured: `#{Objective =>
%% #{target, measured, ok}}'. `Measured': `availability', `mttd_ms', `mttr_ms' (means),
%% `max_degradation', `recovery_success' (each may be `undefined': then `ok' is true, nothing to
%% judge yet).
-spec compliance(map(), map()) -> #{atom() => #{target := number(), measured := number() | undefined, ok := boolean()}}.
compliance(Slo, Measured) ->
    Rules = [{availability, fun(M, T) -> M >= T end},
             {mttd_ms, fun(M, T) -> M =< T end},
             {mttr_ms, fun(M, T) -> M =< T end},
             {max_degradation, fun(M, T) -> M =< T end},
             {recovery_success, fun(M, T) -> M >= T end}],
    maps:from_list([{K, #{target => T, measured => M, ok => M =:= undefined orelse Ok(M, T)}}
                    || {K, Ok} <- Rules, T <- [maps:get(K, Slo)], M <- [maps:get(K, Measured, undefined)]]).
