%%% @doc The phi-accrual failure detector (Hayashibara et al., 2004), as a pure value.
%%%
%%% A detector holds the last `window' inter-arrival times of one peer's heartbeats and answers,
%%% for the time elapsed since the last heartbeat, how unlikely it is that the peer is still
%%% alive: `phi = -log10(1 - F(t))' with `F' the CDF of the normal distribution fitted to the
%%% window (mean and standard deviation, the latter never below `min_std_ms'). phi 1 means a
%%% one-in-ten chance that a live peer would be this late, phi 8 one in 10^8.
%%%
%%% `F' is the exact normal CDF (through `math:erfc/1'), not the logistic approximation some
%%% implementations use: that one overstates phi by more than one around phi 8, which would make
%%% the threshold mean something else than it says. Where `1 - F' underflows a double (t more
%%% than 37 standard deviations late, phi about 300) phi is held at that ceiling, so phi is
%%% monotone non-decreasing in the elapsed time everywhere.
%%%
%%% Inter-arrival times are integers (milliseconds), so the running sum and sum of squares are
%%% exact and mean and variance never drift however long the detector runs. A new detector is
%%% seeded with two intervals around the expected heartbeat interval (as Akka does) so it gives
%%% sensible answers from its first heartbeat on.
%%%
%%% Everything is in milliseconds of a monotonic clock; the caller supplies the times.
-module(mape_k_phi).

-export([new/1, heartbeat/2, phi/2, suspect/2, forget_last/1, stats/1, max_phi/0]).

-export_type([detector/0, opts/0]).

-record(phi, {
    window :: pos_integer(),
    min_std :: number(),
    threshold :: number(),
    intervals :: queue:queue(non_neg_integer()),
    n :: non_neg_integer(),
    sum :: non_neg_integer(),
    sum_sq :: non_neg_integer(),
    last :: integer() | undefined
}).

-opaque detector() :: #phi{}.

-type opts() :: #{
    window => pos_integer(),
    min_std_ms => number(),
    threshold => number(),
    expected_interval_ms => pos_integer()
}.

-define(DEFAULTS, #{window => 1000, min_std_ms => 100, threshold => 8, expected_interval_ms => 200}).
%% 0.5 * erfc(X) underflows below about X = 26.5; phi is held at its value at X = 26.
-define(ERFC_MAX_X, 26.0).

%% @doc A detector that has seen no heartbeat yet. Options (all optional): `window' (1,000
%% intervals), `min_std_ms' (100), `threshold' (8), `expected_interval_ms' (200, seeds the
%% window with that interval plus and minus a quarter).
-spec new(opts()) -> detector().
new(Opts0) ->
    #{window := W, min_std_ms := MinStd, threshold := Th, expected_interval_ms := E} = maps:merge(?DEFAULTS, Opts0),
    true = is_integer(W) andalso W >= 2 andalso is_number(MinStd) andalso MinStd > 0
        andalso is_number(Th) andalso Th > 0 andalso is_integer(E) andalso E > 0,
    Seed = [E - E div 4, E + E div 4],
    lists:foldl(fun push/2,
                #phi{window = W, min_std = MinStd, threshold = Th, intervals = queue:new(),
                     n = 0, sum = 0, sum_sq = 0, last = undefined},
                Seed).

%% @doc Records a heartbeat that arrived at `NowMs'. The first one only starts the clock.
-spec heartbeat(detector(), integer()) -> detector().
heartbeat(#phi{last = undefined} = D, Now) when is_integer(Now) ->
    D#phi{last = Now};
heartbeat(#phi{last = Last} = D, Now) when is_integer(Now) ->
    Interval = max(0, Now - Last),
    (push(Interval, D))#phi{last = Now}.

%% @doc Restarts the clock at `NowMs' without recording the interval that just ended. The caller
%% uses it for the heartbeat that ends a suspicion: that gap was a failure, not a sample of how
%% a healthy peer behaves, and counting it would widen the distribution and slow every later
%% detection.
-spec forget_last(detector()) -> detector().
forget_last(D) ->
    D#phi{last = undefined}.

%% @doc phi at `NowMs': 0.0 before the first heartbeat, otherwise `-log10(1 - F(NowMs - last))'.
-spec phi(detector(), integer()) -> float().
phi(#phi{last = undefined}, _Now) ->
    0.0;
phi(#phi{last = Last} = D, Now) ->
    {Mean, Std} = mean_std(D),
    phi_of(Now - Last, Mean, Std).

%% @doc Whether phi at `NowMs' has reached the detector's threshold.
-spec suspect(detector(), integer()) -> boolean().
suspect(#phi{threshold = Th} = D, Now) ->
    phi(D, Now) >= Th.

%% @doc The window's statistics: number of intervals, mean and standard deviation (after the
%% `min_std_ms' floor), the last heartbeat time and the threshold.
-spec stats(detector()) -> #{n := non_neg_integer(), mean_ms := float(), std_ms := float(),
                              last := integer() | undefined, threshold := number()}.
stats(#phi{n = N, last = Last, threshold = Th} = D) ->
    {Mean, Std} = mean_std(D),
    #{n => N, mean_ms => Mean, std_ms => Std, last => Last, threshold => Th}.

%% @doc The ceiling of phi (about 296): where `1 - F' would underflow a double.
-spec max_phi() -> float().
max_phi() ->
    -math:log10(0.5 * math:erfc(?ERFC_MAX_X)).

%%% Internals

push(Interval, #phi{window = W, intervals = Q, n = N, sum = S, sum_sq = S2} = D) when N >= W ->
    {{value, Old}, Q1} = queue:out(Q),
    D#phi{intervals = queue:in(Interval, Q1), sum = S - Old + Interval, sum_sq = S2 - Old * Old + Interval * Interval};
push(Interval, #phi{intervals = Q, n = N, sum = S, sum_sq = S2} = D) ->
    D#phi{intervals = queue:in(Interval, Q), n = N + 1, sum = S + Interval, sum_sq = S2 + Interval * Interval}.

mean_std(#phi{n = N, sum = S, sum_sq = S2, min_std = MinStd}) ->
    Mean = S / N,
    %% N * S2 - S * S is exact (integers) and never negative.
    Var = (N * S2 - S * S) / (N * N),
    {Mean, max(float(MinStd), math:sqrt(Var))}.

phi_of(Elapsed, Mean, Std) ->
    X = (Elapsed - Mean) / (Std * math:sqrt(2)),
    Tail = 0.5 * math:erfc(min(X, ?ERFC_MAX_X)),
    %% -log10 of a value in (0, 1]: never negative (0.0 rather than -0.0 when Tail is 1.0).
    max(0.0, -math:log10(Tail)).
