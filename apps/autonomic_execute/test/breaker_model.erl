%%% @doc A model of the circuit breaker's requirements (autonomic_breaker's module doc), as
%%% plainly as they can be written: the failures are a list of times, the state a map, and every
%%% operation first applies the deadlines passed. The PropEr test drives the real breaker and
%%% this model with the same commands and compares every answer.
-module(breaker_model).

-export([new/1, ask/2, melt/2, success/2, reset/2, observe/2]).

-type model() :: map().

-spec new(map()) -> model().
new(Opts) ->
    #{opts => Opts, state => closed, failures => [], until => undefined, probes => 0, successes => 0}.

%% Requirement 4 and 6: the deadlines.
tick(#{state := open, until := U, opts := #{probes := P, reset_ms := R}} = M, Now) when Now >= U ->
    tick(M#{state := half_open, probes := P, successes := 0, until := U + R}, Now);
tick(#{state := half_open, until := U, opts := #{probes := P, reset_ms := R}} = M, Now) when Now >= U ->
    tick(M#{probes := P, successes := 0, until := U + R}, Now);
tick(M, _Now) ->
    M.

-spec ask(model(), integer()) -> {ok | blown, model()}.
ask(M0, Now) ->
    case tick(M0, Now) of
        #{state := closed} = M -> {ok, M};
        #{state := open} = M -> {blown, M};
        #{state := half_open, probes := P} = M when P > 0 -> {ok, M#{probes := P - 1}};
        #{state := half_open} = M -> {blown, M}
    end.

-spec melt(model(), integer()) -> model().
melt(M0, Now) ->
    case tick(M0, Now) of
        #{state := closed, failures := F, opts := #{threshold := N, window_ms := W}} = M ->
            F1 = [Now | F],
            case length([T || T <- F1, T > Now - W]) >= N of
                true -> open(M, Now);
                false -> M#{failures := F1}
            end;
        #{state := open} = M ->
            M;
        #{state := half_open} = M ->
            open(M, Now)
    end.

-spec success(model(), integer()) -> model().
success(M0, Now) ->
    case tick(M0, Now) of
        #{state := half_open, successes := S, opts := #{successes := Need}} = M when S + 1 >= Need -> close(M);
        #{state := half_open, successes := S} = M -> M#{successes := S + 1};
        M -> M
    end.

-spec reset(model(), integer()) -> model().
reset(M, Now) ->
    close(tick(M, Now)).

%% What info/1 reports.
-spec observe(model(), integer()) -> {map(), model()}.
observe(M0, Now) ->
    #{state := S, probes := P, successes := Su, failures := F, opts := #{window_ms := W}} = M = tick(M0, Now),
    {#{state => S, probes_left => case S of half_open -> P; _ -> 0 end, successes => Su,
       failures => case S of closed -> length([T || T <- F, T > Now - W]); _ -> 0 end}, M}.

open(#{opts := #{reset_ms := R}} = M, Now) ->
    M#{state := open, until := Now + R, failures := [], probes := 0, successes := 0}.

close(M) ->
    M#{state := closed, failures := [], until := undefined, probes := 0, successes := 0}.
