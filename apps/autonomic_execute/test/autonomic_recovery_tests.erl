%%% @doc EUnit tests of the recovery helpers: retries (attempt counting, full-jitter delays within
%%% their bounds and actually spread, the cap, give-up, exceptions), fallback chains (order,
%%% failures collected, breakers skipped), the JSON encoder of the webhooks, and receipt
%%% encoding. Pure: no application needed, except a breaker for one chain step.
-module(autonomic_recovery_tests).

-include_lib("eunit/include/eunit.hrl").

%%% Retry

retry_succeeds_after_failures_test() ->
    Counter = counters:new(1, []),
    Fun = fun() ->
              counters:add(Counter, 1, 1),
              case counters:get(Counter, 1) of
                  N when N < 3 -> {error, not_yet};
                  N -> {ok, N}
              end
          end,
    ?assertEqual({ok, 3}, autonomic_retry:run(Fun, #{max_attempts => 5, base_ms => 1})),
    ?assertEqual(3, counters:get(Counter, 1)).

retry_gives_up_with_the_last_outcome_test() ->
    Counter = counters:new(1, []),
    Fail = fun() -> counters:add(Counter, 1, 1), {error, {attempt, counters:get(Counter, 1)}} end,
    ?assertEqual({error, {attempt, 4}}, autonomic_retry:run(Fail, #{max_attempts => 4, base_ms => 1})),
    ?assertEqual(error, autonomic_retry:run(fun() -> error end, #{max_attempts => 2, base_ms => 0})),
    %% The last exception is re-raised, with its class.
    ?assertExit(gone, autonomic_retry:run(fun() -> exit(gone) end, #{max_attempts => 2, base_ms => 0})),
    ?assertThrow(ball, autonomic_retry:run(fun() -> throw(ball) end, #{max_attempts => 2, base_ms => 0})).

retry_if_stops_early_test() ->
    Counter = counters:new(1, []),
    Fun = fun() -> counters:add(Counter, 1, 1), {error, fatal} end,
    Only = fun({error, transient}) -> true; (_) -> false end,
    ?assertEqual({error, fatal}, autonomic_retry:run(Fun, #{max_attempts => 5, base_ms => 0, retry_if => Only})),
    ?assertEqual(1, counters:get(Counter, 1)).

retry_waits_between_attempts_test() ->
    %% Three failures, base 20 ms: the waits are at most 20 + 40 ms.
    T0 = erlang:monotonic_time(millisecond),
    {error, x} = autonomic_retry:run(fun() -> {error, x} end, #{max_attempts => 3, base_ms => 20}),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 60 + 50).

full_jitter_test() ->
    Opts = #{base_ms => 100, max_delay_ms => 1000},
    %% Attempt N: uniform in [0, min(1000, 100 * 2^(N-1))].
    [begin
         Cap = min(1000, 100 bsl (N - 1)),
         Ds = [autonomic_retry:delay(N, Opts) || _ <- lists:seq(1, 2000)],
         ?assert(lists:all(fun(D) -> D >= 0 andalso D =< Cap end, Ds)),
         %% Full jitter spreads over the whole range, not just near the cap.
         Mean = lists:sum(Ds) / length(Ds),
         ?assert(abs(Mean - Cap / 2) < Cap * 0.1, {N, Mean, Cap}),
         ?assert(lists:min(Ds) < Cap * 0.05),
         ?assert(lists:max(Ds) > Cap * 0.95)
     end || N <- [1, 2, 3, 4, 5, 10, 100]],
    ?assertEqual(0, autonomic_retry:delay(3, #{base_ms => 0})).

retry_bad_input_test() ->
    F = fun() -> ok end,
    ?assertEqual({error, {invalid_fun, x}}, autonomic_retry:run(x, #{})),
    ?assertEqual({error, {invalid_options, []}}, autonomic_retry:run(F, [])),
    ?assertEqual({error, {invalid_option, max_attempts, 0}}, autonomic_retry:run(F, #{max_attempts => 0})),
    ?assertEqual({error, {invalid_option, base_ms, -1}}, autonomic_retry:run(F, #{base_ms => -1})),
    ?assertEqual({error, {invalid_option, max_delay_ms, x}}, autonomic_retry:run(F, #{max_delay_ms => x})),
    ?assertEqual({error, {invalid_option, retry_if, x}}, autonomic_retry:run(F, #{retry_if => x})),
    ?assertEqual({error, {unknown_option, tries}}, autonomic_retry:run(F, #{tries => 3})),
    ?assertEqual({error, {invalid_attempt, 0}}, autonomic_retry:delay(0, #{})),
    ?assertEqual({error, {invalid_attempt, x}}, autonomic_retry:delay(x, #{})),
    ?assertEqual({error, {invalid_options, []}}, autonomic_retry:delay(1, [])),
    ?assertEqual({error, {invalid_option, base_ms, -5}}, autonomic_retry:delay(1, #{base_ms => -5})).

%%% Fallback

fallback_first_success_test() ->
    Self = self(),
    Chain = [{primary, fun() -> Self ! primary, {error, down} end},
             {replica, fun() -> Self ! replica, <<"value">> end},
             {cache, fun() -> Self ! cache, <<"stale">> end}],
    ?assertEqual(<<"value">>, autonomic_fallback:run(Chain)),
    ?assertEqual([primary, replica], flush([])).

fallback_all_failed_test() ->
    Chain = [fun() -> error(boom) end, {b, fun() -> error end}, fun() -> exit(gone) end, {d, fun() -> {error, x} end}],
    ?assertEqual({error, {all_failed, [{1, {exception, error, boom}}, {b, error}, {3, {exception, exit, gone}},
                                       {d, {error, x}}]}},
                 autonomic_fallback:run(Chain)).

fallback_skips_open_breakers_test_() ->
    {setup, fun execute_test_env:start/0, fun execute_test_env:stop/1,
     fun() ->
         ok = autonomic_breaker:install(fb_primary, #{threshold => 1, reset_ms => 60000}),
         ok = autonomic_breaker:melt(fb_primary),
         Self = self(),
         ?assertEqual(fallback, autonomic_fallback:run([{breaker, fb_primary, fun() -> Self ! ran, primary end},
                                                        fun() -> fallback end])),
         ?assertEqual([], flush([])),
         ?assertEqual({error, {all_failed, [{{breaker, fb_primary}, {error, blown}}]}},
                      autonomic_fallback:run([{breaker, fb_primary, fun() -> primary end}]))
     end}.

fallback_bad_input_test() ->
    ?assertEqual({error, empty_chain}, autonomic_fallback:run([])),
    ?assertEqual({error, {invalid_step, x}}, autonomic_fallback:run([fun() -> ok end, x])),
    Arity1 = {a, fun(_) -> ok end},
    ?assertEqual({error, {invalid_step, Arity1}}, autonomic_fallback:run([Arity1])),
    ?assertEqual({error, {invalid_step, chain}}, autonomic_fallback:run(chain)).

flush(Acc) ->
    receive M when is_atom(M) -> flush([M | Acc]) after 0 -> lists:reverse(Acc) end.

%%% JSON

json_test() ->
    ?assertEqual(<<"{\"a\":1,\"b\":[true,false,null],\"c\":\"x\\\"y\\n\",\"d\":1.5,\"e\":\"atom\"}">>,
                 autonomic_json:encode(#{e => atom, d => 1.5, c => <<"x\"y\n">>, b => [true, false, null], a => 1})),
    ?assertEqual(<<"\"<0.1.0>\"">>, autonomic_json:encode(list_to_pid("<0.1.0>"))),
    ?assertEqual(<<"\"{db,1}\"">>, autonomic_json:encode({db, 1})),
    ?assertEqual(<<"\"\\u0001\"">>, autonomic_json:encode(<<1>>)),
    ?assertEqual(<<"\"/w==\"">>, autonomic_json:encode(<<255>>)),
    ?assertEqual(<<"\"caf", 16#c3, 16#a9, "\"">>, autonomic_json:encode(<<"café"/utf8>>)),
    ?assertEqual(<<"{\"1\":{\"k\":[]}}">>, autonomic_json:encode(#{1 => #{<<"k">> => []}})).

%%% Receipts

receipt_encoding_test() ->
    Detail = #{kind => failover, action => {failover, db, {"db1", 5432}, {"db2", 5432}}, previous => {"db1", 5432},
               new => {"db2", 5432}, pid => self()},
    Bin = autonomic_receipt:encode(Detail),
    ?assertEqual(Bin, autonomic_receipt:encode(maps:from_list(lists:reverse(maps:to_list(Detail))))),
    ?assertEqual({ok, Detail#{v => 1}}, autonomic_receipt:decode(Bin)),
    ?assertEqual({error, not_a_receipt}, autonomic_receipt:decode(<<"db1 -> db2">>)),
    ?assertEqual({error, not_a_receipt}, autonomic_receipt:decode(term_to_binary(#{kind => x}))),
    ?assertEqual(<<"execute.throttle">>, autonomic_receipt:action(throttle)),
    ?assertEqual(rollback, autonomic_receipt:kind(<<"execute.rollback">>)),
    ?assertEqual(undefined, autonomic_receipt:kind(<<"execute.nothing">>)),
    ?assertEqual(undefined, autonomic_receipt:kind(<<"restart_child">>)).
