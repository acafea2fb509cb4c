%%% @doc Retries with exponential backoff and full jitter.
%%%
%%% ```
%%% 1> autonomic_retry:run(fun() -> httpc:request(Url) end, #{max_attempts => 5, base_ms => 100}).
%%% {ok,{{"HTTP/1.1",200,"OK"},[...],"..."}}
%%% '''
%%%
%%% An attempt fails when `Fun' raises, or returns `error' or `{error, _}'; any other result is
%%% returned at once. Before attempt `N + 1' (N >= 1) the caller sleeps a delay drawn uniformly
%%% from `[0, min(max_delay_ms, base_ms * 2^(N-1))]' ("full jitter": retries of many clients
%%% spread out instead of arriving together). After `max_attempts' the last outcome is returned
%%% (or its exception re-raised). `retry_if', a predicate over a failure (`error',
%%% `{error, Reason}' or `{exception, Class, Reason}'), stops early on failures not worth
%%% retrying.
-module(autonomic_retry).

-export([run/2, delay/2, defaults/0]).

-export_type([options/0, failure/0]).

-define(LOG, #{domain => [autonomic, execute]}).

-type failure() :: error | {error, term()} | {exception, error | exit | throw, term()}.

-type options() :: #{
    max_attempts => pos_integer(),
    base_ms => non_neg_integer(),
    max_delay_ms => non_neg_integer(),
    retry_if => fun((failure()) -> boolean())
}.

%% @doc 3 attempts, a base delay of 100 ms, delays capped at 5 s, every failure retried.
-spec defaults() -> options().
defaults() ->
    #{max_attempts => 3, base_ms => 100, max_delay_ms => 5000}.

%% @doc Runs `Fun' until it succeeds or the attempts run out (see the module doc).
-spec run(fun(() -> Result), options()) -> Result | {error, term()}.
run(Fun, Opts) when is_function(Fun, 0), is_map(Opts) ->
    case check(maps:merge(defaults(), Opts)) of
        {ok, O} -> attempt(Fun, 1, O);
        {error, _} = Error -> Error
    end;
run(Fun, Opts) when is_function(Fun, 0) ->
    {error, {invalid_options, Opts}};
run(Fun, _Opts) ->
    {error, {invalid_fun, Fun}}.

%% @doc The delay before the attempt after attempt `Attempt' (>= 1), in milliseconds: uniform in
%% `[0, min(max_delay_ms, base_ms * 2^(Attempt-1))]'.
-spec delay(pos_integer(), options()) -> non_neg_integer() | {error, term()}.
delay(Attempt, Opts) when is_integer(Attempt), Attempt >= 1, is_map(Opts) ->
    case check(maps:merge(defaults(), Opts)) of
        {ok, #{base_ms := Base, max_delay_ms := Max}} ->
            %% The exponent is bounded so a large attempt number cannot build a huge integer.
            Cap = min(Max, Base bsl min(Attempt - 1, 62)),
            rand:uniform(Cap + 1) - 1;
        {error, _} = Error ->
            Error
    end;
delay(Attempt, Opts) when is_map(Opts) ->
    {error, {invalid_attempt, Attempt}};
delay(_Attempt, Opts) ->
    {error, {invalid_options, Opts}}.

%%% Internal

attempt(Fun, N, #{max_attempts := Max} = O) ->
    Outcome = try Fun() of
        error -> {failed, error, error};
        {error, _} = E -> {failed, E, E};
        Result -> {ok, Result}
    catch
        Class:Reason:Stack -> {failed, {exception, Class, Reason}, {raise, Class, Reason, Stack}}
    end,
    case Outcome of
        {ok, Result1} ->
            Result1;
        {failed, Failure, Last} when N < Max ->
            case retry(Failure, O) of
                true ->
                    D = delay(N, O),
                    logger:debug("retry: attempt ~b failed (~0p); next in ~b ms", [N, Failure, D], ?LOG),
                    timer:sleep(D),
                    attempt(Fun, N + 1, O);
                false ->
                    give_up(Last)
            end;
        {failed, _, Last} ->
            give_up(Last)
    end.

retry(Failure, #{retry_if := F}) ->
    F(Failure) =:= true;
retry(_Failure, _O) ->
    true.

give_up({raise, Class, Reason, Stack}) -> erlang:raise(Class, Reason, Stack);
give_up(Result) -> Result.

check(#{max_attempts := A}) when not (is_integer(A) andalso A >= 1) -> {error, {invalid_option, max_attempts, A}};
check(#{base_ms := B}) when not (is_integer(B) andalso B >= 0) -> {error, {invalid_option, base_ms, B}};
check(#{max_delay_ms := M}) when not (is_integer(M) andalso M >= 0) -> {error, {invalid_option, max_delay_ms, M}};
check(#{retry_if := F}) when not is_function(F, 1) -> {error, {invalid_option, retry_if, F}};
check(O) ->
    case maps:keys(maps:without([max_attempts, base_ms, max_delay_ms, retry_if], O)) of
        [] -> {ok, O};
        [K | _] -> {error, {unknown_option, K}}
    end.
