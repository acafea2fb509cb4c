%%% @doc Fallback chains: try each alternative in order and return the first success.
%%%
%%% ```
%%% 1> autonomic_fallback:run([{primary, fun() -> db:read(K) end},
%%%                            {replica, fun() -> replica:read(K) end},
%%%                            {cache, fun() -> cache:read(K) end}]).
%%% {ok,<<"value">>}
%%% '''
%%%
%%% A step is a fun of arity 0, `{Label, Fun}', or `{breaker, Name, Fun}' (the step is skipped,
%%% as failed with `blown', while the circuit breaker `Name' is open, and runs through it
%%% otherwise: {@link autonomic_breaker:run/2}). A step fails when it raises, or returns `error'
%%% or `{error, _}' (exceptions are caught: a chain is how the caller survives its steps). The
%%% first other result is returned as it is. When every step fails the result is
%%% `{error, {all_failed, [{Label, Failure}]}}' in chain order, a step's label being its
%%% position (from 1) when it has none. The chain is checked before any step runs.
-module(autonomic_fallback).

-export([run/1]).

-export_type([step/0]).

-define(LOG, #{domain => [autonomic, execute]}).

-type step() :: fun(() -> term()) | {term(), fun(() -> term())} | {breaker, autonomic_breaker:name(), fun(() -> term())}.

%% @doc Runs the chain (see the module doc).
-spec run([step()]) -> term() | {error, {all_failed, [{term(), term()}]} | empty_chain | {invalid_step, term()}}.
run([]) ->
    {error, empty_chain};
run(Chain) when is_list(Chain) ->
    case [S || S <- Chain, not valid(S)] of
        [] -> run(Chain, 1, []);
        [Bad | _] -> {error, {invalid_step, Bad}}
    end;
run(Other) ->
    {error, {invalid_step, Other}}.

run([], _N, Failures) ->
    {error, {all_failed, lists:reverse(Failures)}};
run([Step | Rest], N, Failures) ->
    {Label, Fun} = label(Step, N),
    case attempt(Fun) of
        {ok, Result} ->
            Result;
        {failed, Failure} ->
            logger:info("fallback: step ~0p failed (~0p)~s", [Label, Failure,
                        case Rest of [] -> ""; _ -> ", trying the next" end], ?LOG),
            run(Rest, N + 1, [{Label, Failure} | Failures])
    end.

attempt(Fun) ->
    try Fun() of
        error -> {failed, error};
        {error, _} = E -> {failed, E};
        Result -> {ok, Result}
    catch
        Class:Reason -> {failed, {exception, Class, Reason}}
    end.

label({breaker, Name, Fun}, _N) ->
    {{breaker, Name}, fun() -> autonomic_breaker:run(Name, Fun) end};
label({Label, Fun}, _N) ->
    {Label, Fun};
label(Fun, N) ->
    {N, Fun}.

valid({breaker, Name, Fun}) -> (is_atom(Name) orelse is_binary(Name)) andalso is_function(Fun, 0);
valid({_Label, Fun}) -> is_function(Fun, 0);
valid(Fun) -> is_function(Fun, 0).
