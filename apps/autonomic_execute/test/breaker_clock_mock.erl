%%% @doc A clock for circuit breakers under test (`#{clock => {breaker_clock_mock, now}}'): it
%%% moves only when the test says so, which makes a breaker's behaviour a function of the
%%% commands it received.
-module(breaker_clock_mock).

-export([start/1, now/0, advance/1]).

%% @doc Creates the clock at `T' milliseconds.
-spec start(integer()) -> ok.
start(T) ->
    Ref = atomics:new(1, [{signed, true}]),
    ok = atomics:put(Ref, 1, T),
    persistent_term:put(?MODULE, Ref).

%% @doc The time now.
-spec now() -> integer().
now() ->
    atomics:get(persistent_term:get(?MODULE), 1).

%% @doc Moves the clock `Ms' forward; returns the new time.
-spec advance(non_neg_integer()) -> integer().
advance(Ms) ->
    atomics:add_get(persistent_term:get(?MODULE), 1, Ms).
