%%% @doc EUnit tests of the per-tenant token buckets: the admitted rate is within 5% of the rate
%%% set, and of half of it under the governor's `{throttle, 50}', from one caller and from
%%% several at once; bursts; pause and resume; tenants without settings; bad input.
-module(autonomic_bucket_tests).

-include_lib("eunit/include/eunit.hrl").

%% How long the callers take tokens. The rate is measured between the first and the last token
%% taken, from an empty bucket whose burst is half a second of its rate: a caller descheduled
%% (by the OS, on a busy machine) for less than that finds the tokens of the gap waiting, so the
%% figure is the bucket's, not the scheduler's.
-define(WINDOW_MS, 2000).

bucket_test_() ->
    {setup,
        fun execute_test_env:start/0,
        fun execute_test_env:stop/1,
        [{timeout, 30, F} || F <- [
            fun rate_and_throttled_rate/0,
            fun concurrent_callers_share_the_rate/0,
            fun bursts/0,
            fun pause_and_resume/0,
            fun tenants_without_settings/0,
            fun bad_input_is_an_error/0
        ]]}.

tenant() ->
    <<"t", (integer_to_binary(erlang:unique_integer([positive])))/binary>>.

%% 1,000/s, then {throttle, 50}: 500/s.
rate_and_throttled_rate() ->
    T = tenant(),
    ok = autonomic_bucket:set_rate(T, 1000, 500),
    Full = measure(T, 1),
    ?assert(abs(Full - 1000) =< 50, {full, Full}),
    ?assertEqual({ok, 0}, autonomic_bucket:throttle(T, 50)),
    Half = measure(T, 1),
    ?assert(abs(Half - 500) =< 25, {throttled, Half}),
    ?assertMatch({ok, #{rate := 1000, burst := 500, throttle := 50, paused := false, admitted_rate := 500.0}},
                 autonomic_bucket:info(T)),
    ?assertEqual({ok, 50}, autonomic_bucket:throttle(T, 0)),
    Again = measure(T, 1),
    ?assert(abs(Again - 1000) =< 50, {unthrottled, Again}).

%% Four processes take from one bucket at once (compare-and-swap on one atomic word): together
%% they get the bucket's rate, no more.
concurrent_callers_share_the_rate() ->
    T = tenant(),
    ok = autonomic_bucket:set_rate(T, 2000, 1000),
    {ok, 0} = autonomic_bucket:throttle(T, 25),
    Rate = measure(T, 4),
    ?assert(abs(Rate - 1500) =< 75, {concurrent, Rate}).

bursts() ->
    T = tenant(),
    %% 1 per second: only the burst goes through at once.
    ok = autonomic_bucket:set_rate(T, 1, 20),
    Took = length([x || _ <- lists:seq(1, 100), autonomic_bucket:take(T)]),
    ?assertEqual(20, Took).

pause_and_resume() ->
    T = tenant(),
    ok = autonomic_bucket:set_rate(T, 100000, 10),
    ?assert(autonomic_bucket:take(T)),
    ?assertEqual({ok, false}, autonomic_bucket:pause(T)),
    ?assertEqual([], [x || _ <- lists:seq(1, 1000), autonomic_bucket:take(T)]),
    ?assertEqual({0, true}, autonomic_bucket:controls(T)),
    ?assertEqual({ok, true}, autonomic_bucket:resume(T)),
    ?assert(autonomic_bucket:take(T)),
    %% 100% throttle admits nothing either.
    {ok, 0} = autonomic_bucket:throttle(T, 100),
    ?assertNot(autonomic_bucket:take(T)).

tenants_without_settings() ->
    T = tenant(),
    ?assert(autonomic_bucket:take(T)),
    ?assertEqual({error, not_found}, autonomic_bucket:info(T)),
    ?assertEqual({0, false}, autonomic_bucket:controls(T)),
    %% A throttle without a rate limits nothing (it scales the tenant's quotas); a pause stops it.
    {ok, 0} = autonomic_bucket:throttle(T, 40),
    ?assert(autonomic_bucket:take(T)),
    ?assertMatch({ok, #{rate := none, throttle := 40, admitted_rate := infinity}}, autonomic_bucket:info(T)),
    {ok, false} = autonomic_bucket:pause(T),
    ?assertNot(autonomic_bucket:take(T)),
    %% Back to nothing set: the tenant is forgotten.
    {ok, true} = autonomic_bucket:resume(T),
    {ok, 40} = autonomic_bucket:throttle(T, 0),
    ?assertEqual({error, not_found}, autonomic_bucket:info(T)),
    ?assertNot(lists:keymember(T, 1, autonomic_bucket:list())).

bad_input_is_an_error() ->
    ?assertEqual({error, invalid_tenant}, autonomic_bucket:take(acme)),
    ?assertEqual({error, invalid_tenant}, autonomic_bucket:set_rate(<<>>, 10, 1)),
    ?assertEqual({error, invalid_tenant}, autonomic_bucket:throttle(binary:copy(<<"x">>, 257), 10)),
    ?assertEqual({error, {invalid_rate, 0}}, autonomic_bucket:set_rate(<<"t">>, 0, 1)),
    ?assertEqual({error, {invalid_rate, fast}}, autonomic_bucket:set_rate(<<"t">>, fast, 1)),
    ?assertEqual({error, {invalid_burst, 0}}, autonomic_bucket:set_rate(<<"t">>, 10, 0)),
    ?assertEqual({error, {invalid_percent, 101}}, autonomic_bucket:throttle(<<"t">>, 101)),
    ?assertEqual({error, {invalid_percent, 50.0}}, autonomic_bucket:throttle(<<"t">>, 50.0)),
    ?assertEqual({error, {invalid_paused, yes}}, autonomic_bucket:set_paused(<<"t">>, yes)),
    ?assertEqual({error, not_found}, autonomic_bucket:info(<<"t">>)).

%%% Helpers

%% Empties the bucket, then has Callers processes take from it as fast as they can for
%% ?WINDOW_MS; returns the admitted rate per second between the first and the last token taken.
measure(T, Callers) ->
    drain(T),
    Parent = self(),
    Deadline = erlang:monotonic_time(microsecond) + ?WINDOW_MS * 1000,
    Pids = [spawn_link(fun() -> Parent ! {self(), hammer(T, Deadline, {0, undefined, undefined})} end)
            || _ <- lists:seq(1, Callers)],
    Results = [receive {P, R} -> R end || P <- Pids],
    N = lists:sum([C || {C, _, _} <- Results]),
    First = lists:min([F || {_, F, _} <- Results, F =/= undefined]),
    Last = lists:max([L || {_, _, L} <- Results, L =/= undefined]),
    (N - 1) * 1.0e6 / (Last - First).

drain(T) ->
    case autonomic_bucket:take(T) of
        true -> drain(T);
        false -> ok
    end.

hammer(T, Deadline, {N, First, Last} = Acc) ->
    Now = erlang:monotonic_time(microsecond),
    case Now >= Deadline of
        true -> Acc;
        false ->
            case autonomic_bucket:take(T) of
                true when First =:= undefined -> hammer(T, Deadline, {N + 1, Now, Now});
                true -> hammer(T, Deadline, {N + 1, First, Now});
                false -> hammer(T, Deadline, {N, First, Last})
            end
    end.
