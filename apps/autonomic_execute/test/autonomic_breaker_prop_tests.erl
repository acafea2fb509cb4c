%%% @doc PropEr: the circuit breaker (ETS fast path, lock-free failure ring, owner process) and the
%%% plain model of its requirements (`breaker_model') agree on the answer of every `ask', and on
%%% the state, probes left, successes counted and failures in the window after every command, for
%%% random options and random sequences of asks, failures, successes, resets and clock moves.
-module(autonomic_breaker_prop_tests).

-include_lib("proper/include/proper.hrl").
-include_lib("eunit/include/eunit.hrl").

breaker_matches_model_test_() ->
    {setup,
        fun() -> Env = execute_test_env:start(), ok = breaker_clock_mock:start(1000000), Env end,
        fun execute_test_env:stop/1,
        {timeout, 300,
            ?_assert(proper:quickcheck(prop_breaker_matches_model(), [{numtests, 600}, {to_file, user}]))}}.

prop_breaker_matches_model() ->
    ?FORALL({Opts, Commands}, {options(), list(command())}, agree(Opts, Commands)).

agree(Opts, Commands) ->
    Name = <<"prop-", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
    ok = autonomic_breaker:install(Name, Opts#{clock => {breaker_clock_mock, now}}),
    try
        walk(Name, breaker_model:new(Opts), Commands, [])
    after
        ok = autonomic_breaker:remove(Name)
    end.

walk(_Name, _Model, [], _Done) ->
    true;
walk(Name, Model, [Command | Rest], Done) ->
    Now = breaker_clock_mock:now(),
    {Real, Model1} = case Command of
        {advance, Ms} ->
            _ = breaker_clock_mock:advance(Ms),
            {ok, Model};
        ask ->
            {Answer, M} = breaker_model:ask(Model, Now),
            {{autonomic_breaker:ask(Name), Answer}, M};
        melt ->
            {autonomic_breaker:melt(Name), breaker_model:melt(Model, Now)};
        success ->
            {autonomic_breaker:success(Name), breaker_model:success(Model, Now)};
        reset ->
            {autonomic_breaker:reset(Name), breaker_model:reset(Model, Now)}
    end,
    {Want, Model2} = breaker_model:observe(Model1, breaker_clock_mock:now()),
    {ok, Info} = autonomic_breaker:info(Name),
    Got = maps:with([state, probes_left, successes, failures], Info),
    AnswerOk = case Real of
        {A, B} -> A =:= B;
        ok -> true
    end,
    case AnswerOk andalso Got =:= Want of
        true ->
            walk(Name, Model2, Rest, [Command | Done]);
        false ->
            io:format(user, "~nafter ~p (history ~p):~n answer ~p~n breaker ~p~n model   ~p~n",
                      [Command, lists:reverse(Done), Real, Got, Want]),
            false
    end.

%%% Generators

options() ->
    ?LET({Threshold, Window, Reset, Probes}, {range(1, 4), range(1, 40), range(1, 40), range(1, 4)},
         ?LET(Successes, range(1, Probes),
              #{threshold => Threshold, window_ms => Window, reset_ms => Reset, probes => Probes,
                successes => Successes})).

command() ->
    frequency([
        {6, ask},
        {5, melt},
        {3, success},
        {1, reset},
        {4, {advance, range(0, 30)}}
    ]).
