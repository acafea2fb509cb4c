%%% @doc Trend detection, as a pure value: a sliding window of `{Time, Value}' samples, the
%%% least-squares line through them, and the projected time until the line reaches a limit.
%%%
%%% A trend is reported only when the window holds at least `min_samples' points, the slope is
%%% positive, the line explains the data well (coefficient of determination R^2 at least
%%% `min_r2', so noise around a flat level is not a trend), and the projected time to the limit
%%% is within `horizon_s'. Times are in milliseconds; slopes are per second.
-module(mape_k_trend).

-export([new/1, add/3, size/1, fit/1, assess/2]).

-export_type([window/0, fit/0, assessment/0]).

-record(trend, {
    max :: pos_integer(),
    samples :: queue:queue({number(), number()}),
    n :: non_neg_integer()
}).

-opaque window() :: #trend{}.
-type fit() :: #{slope_per_s := float(), intercept := float(), r2 := float(), n := pos_integer(),
                 last_t := number(), last_value := number()}.
-type assessment() ::
    {trend, #{slope_per_s := float(), r2 := float(), value := number(), limit := number(),
              projected_exhaustion_s := float()}}
    | no_trend.

%% @doc An empty window of at most `Max' samples (at least 3).
-spec new(pos_integer()) -> window().
new(Max) when is_integer(Max), Max >= 3 ->
    #trend{max = Max, samples = queue:new(), n = 0}.

%% @doc Adds a sample, dropping the oldest when the window is full.
-spec add(window(), number(), number()) -> window().
add(#trend{max = Max, samples = Q, n = N} = W, T, V) when is_number(T), is_number(V) ->
    case N >= Max of
        true -> W#trend{samples = queue:in({T, V}, queue:drop(Q))};
        false -> W#trend{samples = queue:in({T, V}, Q), n = N + 1}
    end.

%% @doc Number of samples held.
-spec size(window()) -> non_neg_integer().
size(#trend{n = N}) -> N.

%% @doc The least-squares line through the window, or `undefined' with fewer than two samples
%% or when all samples share one time.
-spec fit(window()) -> fit() | undefined.
fit(#trend{n = N}) when N < 2 ->
    undefined;
fit(#trend{samples = Q, n = N}) ->
    Samples = queue:to_list(Q),
    {T0, _} = hd(Samples),
    %% Shift time to the first sample (seconds) to keep the sums well conditioned.
    Pts = [{(T - T0) / 1000, float(V)} || {T, V} <- Samples],
    {Sx, Sy} = lists:foldl(fun({X, Y}, {A, B}) -> {A + X, B + Y} end, {0.0, 0.0}, Pts),
    Mx = Sx / N,
    My = Sy / N,
    {Sxx, Sxy, Syy} = lists:foldl(
        fun({X, Y}, {A, B, C}) -> Dx = X - Mx, Dy = Y - My, {A + Dx * Dx, B + Dx * Dy, C + Dy * Dy} end,
        {0.0, 0.0, 0.0}, Pts),
    case Sxx > 0.0 of
        false ->
            undefined;
        true ->
            Slope = Sxy / Sxx,
            %% A perfectly flat series explains itself fully.
            R2 = case Syy > 0.0 of true -> (Sxy * Sxy) / (Sxx * Syy); false -> 1.0 end,
            {LastT, LastV} = lists:last(Samples),
            #{slope_per_s => Slope, intercept => My - Slope * Mx, r2 => R2, n => N,
              last_t => LastT, last_value => LastV}
    end.

%% @doc Whether the window shows growth that will reach `limit' within `horizon_s'.
%% Options: `limit' (required), `horizon_s' (3600), `min_r2' (0.8), `min_samples' (10).
-spec assess(window(), #{limit := number(), horizon_s => number(), min_r2 => number(),
                         min_samples => pos_integer()}) -> assessment().
assess(#trend{n = N} = W, #{limit := Limit} = Opts) ->
    Horizon = maps:get(horizon_s, Opts, 3600),
    MinR2 = maps:get(min_r2, Opts, 0.8),
    MinSamples = maps:get(min_samples, Opts, 10),
    case N >= MinSamples andalso fit(W) of
        #{slope_per_s := Slope, r2 := R2, last_value := V} when Slope > 0.0, R2 >= MinR2 ->
            Eta = max(0.0, (Limit - V) / Slope),
            case Eta =< Horizon of
                true ->
                    {trend, #{slope_per_s => Slope, r2 => R2, value => V, limit => Limit,
                              projected_exhaustion_s => Eta}};
                false ->
                    no_trend
            end;
        _ ->
            no_trend
    end.
