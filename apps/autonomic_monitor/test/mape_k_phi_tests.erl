%%% @doc EUnit and PropEr tests of the phi-accrual detector (`mape_k_phi').
-module(mape_k_phi_tests).

-include_lib("proper/include/proper.hrl").
-include_lib("eunit/include/eunit.hrl").

%% A detector fed `N' heartbeats exactly `Every' ms apart, starting at time 0.
regular(Opts, N, Every) ->
    lists:foldl(fun(I, D) -> mape_k_phi:heartbeat(D, I * Every) end, mape_k_phi:new(Opts), lists:seq(0, N - 1)).

no_heartbeat_no_suspicion_test() ->
    D = mape_k_phi:new(#{}),
    ?assertEqual(0.0, mape_k_phi:phi(D, 1000000)),
    ?assertNot(mape_k_phi:suspect(D, 1000000)).

phi_at_the_mean_is_log10_2_test() ->
    %% Regular 200 ms beats: mean 200, std floored at 100; at t = mean, 1 - F = 0.5.
    D = regular(#{window => 1000}, 2000, 200),
    #{mean_ms := Mean, std_ms := Std, n := N} = mape_k_phi:stats(D),
    ?assertEqual(1000, N),
    ?assertEqual(200.0, Mean),
    ?assertEqual(100.0, Std),
    ?assert(abs(mape_k_phi:phi(D, 1999 * 200 + 200) - math:log10(2)) < 1.0e-12).

threshold_crossing_matches_the_normal_tail_test() ->
    %% phi 8 means 1 - F = 1e-8: 5.612 standard deviations past the mean (normal quantile).
    D = regular(#{}, 2000, 200),
    Last = 1999 * 200,
    ?assertNot(mape_k_phi:suspect(D, Last + 200 + 561)),
    ?assert(mape_k_phi:suspect(D, Last + 200 + 562)),
    ?assert(abs(mape_k_phi:phi(D, Last + 200 + 100) - 0.79947) < 1.0e-4),   % 1 - F(1 std) = 0.158655
    ?assert(abs(mape_k_phi:phi(D, Last + 200 + 300) - 2.8697) < 1.0e-4).    % 1 - F(3 std) = 0.0013499

min_std_floor_and_real_spread_test() ->
    %% Alternating 100 and 500 ms intervals: std 200 (above the floor of 100), mean 300.
    D = lists:foldl(fun(T, Acc) -> mape_k_phi:heartbeat(Acc, T) end, mape_k_phi:new(#{window => 100}),
                    lists:flatten([[I * 600, I * 600 + 100] || I <- lists:seq(0, 200)])),
    #{mean_ms := Mean, std_ms := Std} = mape_k_phi:stats(D),
    ?assert(abs(Mean - 300.0) < 1.0e-9),
    ?assert(abs(Std - 200.0) < 1.0e-9),
    %% A larger floor wins.
    D2 = regular(#{min_std_ms => 250}, 50, 200),
    ?assertEqual(250.0, maps:get(std_ms, mape_k_phi:stats(D2))).

window_is_bounded_and_slides_test() ->
    %% 10 slow beats then 20 fast ones in a window of 10: only the fast ones remain.
    Slow = lists:foldl(fun(I, D) -> mape_k_phi:heartbeat(D, I * 1000) end, mape_k_phi:new(#{window => 10}), lists:seq(0, 10)),
    Fast = lists:foldl(fun(I, D) -> mape_k_phi:heartbeat(D, 10000 + I * 50) end, Slow, lists:seq(1, 20)),
    #{n := N, mean_ms := Mean} = mape_k_phi:stats(Fast),
    ?assertEqual(10, N),
    ?assertEqual(50.0, Mean).

seeded_from_the_expected_interval_test() ->
    %% After one heartbeat the detector already knows what to expect.
    D = mape_k_phi:heartbeat(mape_k_phi:new(#{expected_interval_ms => 200}), 0),
    #{n := 2, mean_ms := 200.0} = mape_k_phi:stats(D),
    ?assertNot(mape_k_phi:suspect(D, 500)),
    ?assert(mape_k_phi:suspect(D, 800)).

forget_last_keeps_the_gap_out_of_the_window_test() ->
    D = regular(#{}, 100, 200),
    Before = mape_k_phi:stats(D),
    %% A 5 s silence, then the peer comes back: the gap is not a sample.
    D1 = mape_k_phi:heartbeat(mape_k_phi:forget_last(D), 99 * 200 + 5000),
    ?assertEqual(maps:get(mean_ms, Before), maps:get(mean_ms, mape_k_phi:stats(D1))),
    ?assertEqual(0.0 + maps:get(std_ms, Before), maps:get(std_ms, mape_k_phi:stats(D1))),
    %% Without forget_last the gap would have been recorded.
    D2 = mape_k_phi:heartbeat(D, 99 * 200 + 5000),
    ?assert(maps:get(mean_ms, mape_k_phi:stats(D2)) > maps:get(mean_ms, Before)).

ceiling_instead_of_infinity_test() ->
    D = regular(#{}, 10, 200),
    Max = mape_k_phi:max_phi(),
    ?assert(Max > 290 andalso Max < 300),
    ?assertEqual(Max, mape_k_phi:phi(D, 10000000)),
    ?assertEqual(Max, mape_k_phi:phi(D, 1 bsl 62)).

bad_options_are_refused_test() ->
    ?assertError(_, mape_k_phi:new(#{window => 1})),
    ?assertError(_, mape_k_phi:new(#{min_std_ms => 0})),
    ?assertError(_, mape_k_phi:new(#{threshold => -1})).

%%% Properties

phi_properties_test_() ->
    {timeout, 120, [
        ?_assert(proper:quickcheck(prop_phi_monotone_in_elapsed_time(), [{numtests, 2000}, {to_file, user}])),
        ?_assert(proper:quickcheck(prop_phi_in_range(), [{numtests, 2000}, {to_file, user}])),
        ?_assert(proper:quickcheck(prop_exact_statistics(), [{numtests, 500}, {to_file, user}]))
    ]}.

%% For any history, phi never decreases as the silence grows.
prop_phi_monotone_in_elapsed_time() ->
    ?FORALL({Intervals, MinStd, T1, Dt}, {non_empty(list(range(0, 5000))), range(1, 500), range(0, 100000), range(0, 100000)},
        begin
            D = history(Intervals, MinStd, 1000),
            Last = lists:sum(Intervals),
            mape_k_phi:phi(D, Last + T1) =< mape_k_phi:phi(D, Last + T1 + Dt)
        end).

%% phi is a number in [0, max_phi()].
prop_phi_in_range() ->
    ?FORALL({Intervals, T}, {list(range(0, 5000)), range(-1000, 10000000)},
        begin
            P = mape_k_phi:phi(history(Intervals, 100, 1000), lists:sum(Intervals) + T),
            is_float(P) andalso P >= 0.0 andalso P =< mape_k_phi:max_phi()
        end).

%% The running statistics equal those computed afresh from the window's intervals.
prop_exact_statistics() ->
    ?FORALL({Intervals, W}, {non_empty(list(range(0, 5000))), range(2, 50)},
        begin
            D = history(Intervals, 0.001, W),
            Window = lists:sublist(lists:reverse([150, 250 | Intervals]), W),
            N = length(Window),
            Mean = lists:sum(Window) / N,
            Var = lists:sum([(X - Mean) * (X - Mean) || X <- Window]) / N,
            #{n := N2, mean_ms := M2, std_ms := S2} = mape_k_phi:stats(D),
            N2 =:= N andalso abs(M2 - Mean) < 1.0e-6 andalso abs(S2 - max(0.001, math:sqrt(Var))) < 1.0e-6
        end).

history(Intervals, MinStd, W) ->
    {D, _} = lists:foldl(fun(I, {Acc, T}) -> {mape_k_phi:heartbeat(Acc, T + I), T + I} end,
                         {mape_k_phi:heartbeat(mape_k_phi:new(#{min_std_ms => MinStd, window => W}), 0), 0},
                         Intervals),
    D.
