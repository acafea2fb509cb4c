%%% @doc EUnit tests of trend detection (`mape_k_trend'): least-squares slope, fit quality and
%%% the projected time to exhaustion.
-module(mape_k_trend_tests).

-include_lib("eunit/include/eunit.hrl").

window(Points, Max) ->
    lists:foldl(fun({T, V}, W) -> mape_k_trend:add(W, T, V) end, mape_k_trend:new(Max), Points).

exact_line_test() ->
    %% 10 units per second, one sample a second, starting at 100.
    W = window([{I * 1000, 100 + 10 * I} || I <- lists:seq(0, 29)], 60),
    #{slope_per_s := S, r2 := R2, n := 30} = mape_k_trend:fit(W),
    ?assert(abs(S - 10.0) < 1.0e-9),
    ?assert(abs(R2 - 1.0) < 1.0e-9),
    %% From 390 to 1,000 at 10/s: 61 s.
    {trend, #{projected_exhaustion_s := Eta, value := 390}} = mape_k_trend:assess(W, #{limit => 1000}),
    ?assert(abs(Eta - 61.0) < 1.0e-9).

slope_is_per_second_whatever_the_sampling_test() ->
    W = window([{I * 100, 5 * I} || I <- lists:seq(0, 19)], 60),   % 5 per 100 ms
    ?assert(abs(maps:get(slope_per_s, mape_k_trend:fit(W)) - 50.0) < 1.0e-9).

noise_around_a_level_is_no_trend_test() ->
    Noise = [{I * 1000, 500 + element(I rem 4 + 1, {40, -40, 35, -35})} || I <- lists:seq(0, 59)],
    ?assertEqual(no_trend, mape_k_trend:assess(window(Noise, 60), #{limit => 1000})).

shrinking_or_flat_is_no_trend_test() ->
    ?assertEqual(no_trend, mape_k_trend:assess(window([{I * 1000, 1000 - I} || I <- lists:seq(0, 59)], 60), #{limit => 2000})),
    ?assertEqual(no_trend, mape_k_trend:assess(window([{I * 1000, 7} || I <- lists:seq(0, 59)], 60), #{limit => 2000})).

beyond_the_horizon_is_no_trend_test() ->
    %% 1 per second with 10,000 to go: 10,000 s away, beyond a 3,600 s horizon.
    W = window([{I * 1000, I} || I <- lists:seq(0, 59)], 60),
    ?assertEqual(no_trend, mape_k_trend:assess(W, #{limit => 10059})),
    ?assertMatch({trend, _}, mape_k_trend:assess(W, #{limit => 10059, horizon_s => 20000})).

too_few_samples_is_no_trend_test() ->
    W = window([{I * 1000, I * 100} || I <- lists:seq(0, 4)], 60),
    ?assertEqual(no_trend, mape_k_trend:assess(W, #{limit => 1000})),
    ?assertMatch({trend, _}, mape_k_trend:assess(W, #{limit => 1000, min_samples => 5})).

window_slides_test() ->
    %% Old decline, recent growth: only the last 10 samples count.
    W = window([{I * 1000, 1000 - 10 * I} || I <- lists:seq(0, 49)]
               ++ [{50000 + I * 1000, 500 + 20 * I} || I <- lists:seq(1, 10)], 10),
    ?assertEqual(10, mape_k_trend:size(W)),
    ?assert(abs(maps:get(slope_per_s, mape_k_trend:fit(W)) - 20.0) < 1.0e-9).

degenerate_fits_test() ->
    ?assertEqual(undefined, mape_k_trend:fit(window([{0, 1}], 10))),
    ?assertEqual(undefined, mape_k_trend:fit(window([{0, 1}, {0, 2}, {0, 3}], 10))),
    ?assertError(function_clause, mape_k_trend:new(2)).
