%%% @doc Owner of the circuit breakers' ETS table and the one process that changes a breaker's
%%% state ({@link autonomic_breaker} is the API and the callers' fast path).
%%%
%%% Row layout (public table `autonomic_breakers'; only this process writes elements 2 to 4,
%%% except the probe count that callers take in half-open):
%%% `{Name, State, ProbesLeft, Until, Ring, Options, Clock}' where `Until' is when an open breaker
%%% turns half-open or when the current half-open round ends, `Ring' is the `atomics' array of
%%% failure times (index 1: failures recorded since the breaker last closed; then one slot per
%%% `threshold'), and `Clock' is `monotonic' or `{M, F}'.
%%%
%%% Time-driven changes are computed from the deadline, not from the moment they are made: an
%%% open breaker whose `Until' has passed has been half-open since `Until', and its rounds end
%%% every `reset_ms' after that. A timer makes the change when it is due (so events and metrics
%%% are timely); a caller that finds a deadline passed first asks for it at once (`tick'). Either
%%% way the outcome depends only on the clock.
-module(autonomic_breaker_server).
-behaviour(gen_server).

-export([start_link/0, metrics/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(TAB, autonomic_breakers).
-define(LOG, #{domain => [autonomic, execute]}).

-record(b, {
    gen :: reference(),
    successes = 0 :: non_neg_integer(),
    transitions = 0 :: non_neg_integer(),
    since :: integer(),
    timer :: reference() | undefined
}).

%%% API

%% @doc Starts the owner (from `autonomic_execute_sup').
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Scrape-time gauge of every breaker's state (registered as a collector).
-spec metrics() -> [{atom(), gauge, iodata(), [{map(), number()}]}].
metrics() ->
    Rows = case ets:whereis(?TAB) of
        undefined -> [];
        _ -> autonomic_breaker:list()
    end,
    [{autonomic_breaker_state, gauge, "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
      [{#{breaker => N}, code(S)} || {N, S} <- Rows]}].

%%% gen_server

%% @private
-spec init([]) -> {ok, #{}}.
init([]) ->
    %% Writes are rare (changes of state, and probes taken in half-open; failures go to the
    %% atomics ring), so no write_concurrency; read_concurrency as configured (see
    %% autonomic_execute_config:table_options/0).
    _ = ets:new(?TAB, [named_table, public, set | autonomic_execute_config:table_options()]),
    %% Once per start of this process (replacing a persistent term makes the runtime scan every
    %% process): the fast path reads the table by id.
    ok = persistent_term:put(?TAB, ets:whereis(?TAB)),
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call({install, Name, Opts}, _From, Bs) ->
    Clock = maps:get(clock, Opts, monotonic),
    Ring = atomics:new(1 + maps:get(threshold, Opts), [{signed, true}]),
    _ = cancel(Name, Bs),
    true = ets:insert(?TAB, {Name, closed, 0, undefined, Ring, maps:without([clock], Opts), Clock}),
    logger:info("circuit breaker ~p installed: ~p", [Name, Opts], ?LOG#{breaker => Name}),
    {reply, ok, Bs#{Name => #b{gen = make_ref(), since = now(Clock)}}};
handle_call({remove, Name}, _From, Bs) ->
    _ = cancel(Name, Bs),
    true = ets:delete(?TAB, Name),
    {reply, ok, maps:remove(Name, Bs)};
handle_call({Op, Name}, _From, Bs) ->
    case Bs of
        #{Name := B} ->
            {Reply, B1} = op(Op, Name, tick(Name, B)),
            {reply, Reply, Bs#{Name => arm(Name, B1)}};
        #{} ->
            {reply, {error, not_found}, Bs}
    end;
handle_call(_Req, _From, Bs) ->
    {reply, {error, unknown_call}, Bs}.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, Bs) ->
    {noreply, Bs}.

%% @private
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({deadline, Name, Gen}, Bs) ->
    case Bs of
        #{Name := #b{gen = Gen} = B} ->
            {noreply, Bs#{Name => arm(Name, tick(Name, B#b{timer = undefined}))}};
        #{} ->
            {noreply, Bs}
    end;
handle_info(_Msg, Bs) ->
    {noreply, Bs}.

%%% State changes

%% Applies the deadlines that have passed (see the module doc).
tick(Name, B) ->
    case ets:lookup(?TAB, Name) of
        [{_, open, _, Until, _, #{probes := P, reset_ms := R}, Clock}] ->
            Now = now(Clock),
            case Now >= Until of
                true ->
                    true = ets:update_element(?TAB, Name, [{2, half_open}, {3, P}, {4, round_end(Until, R, Now)}]),
                    report(Name, open, half_open, reset_timeout),
                    B#b{successes = 0, since = Until, transitions = B#b.transitions + 1};
                false ->
                    B
            end;
        [{_, half_open, _, Until, _, #{probes := P, reset_ms := R}, Clock}] ->
            Now = now(Clock),
            case Now >= Until of
                true ->
                    true = ets:update_element(?TAB, Name, [{3, P}, {4, round_end(Until, R, Now)}]),
                    logger:notice("circuit breaker ~p: half-open round ended without a verdict; ~b new probes",
                                  [Name, P], ?LOG#{breaker => Name}),
                    B#b{successes = 0};
                false ->
                    B
            end;
        _ ->
            B
    end.

%% Rounds start at the deadline and last R each: the one in force at Now ends at the first
%% Until + k * R (k >= 1) after Now.
round_end(Until, R, Now) ->
    Until + R * (1 + (Now - Until) div R).

op(tick, _Name, B) ->
    {ok, B};
op(trip, Name, B) ->
    %% Only a closed breaker opens on failures (a concurrent caller may have opened it already).
    case state(Name) of
        closed -> {ok, open(Name, failures, B)};
        _ -> {ok, B}
    end;
op(melt, Name, B) ->
    case state(Name) of
        half_open -> {ok, open(Name, probe_failed, B)};
        _ -> {ok, B}
    end;
op(success, Name, B) ->
    case ets:lookup(?TAB, Name) of
        [{_, half_open, _, _, _, #{successes := S}, _}] when B#b.successes + 1 >= S ->
            {ok, close(Name, probes_succeeded, B)};
        [{_, half_open, _, _, _, _, _}] ->
            {ok, B#b{successes = B#b.successes + 1}};
        _ ->
            {ok, B}
    end;
op(reset, Name, B) ->
    case state(Name) of
        closed ->
            [{_, _, _, _, Ring, _, _}] = ets:lookup(?TAB, Name),
            ok = atomics:put(Ring, 1, 0),
            {ok, B};
        _ ->
            {ok, close(Name, reset, B)}
    end;
op(info, Name, B) ->
    [{_, State, Probes, Until, Ring, Opts, Clock}] = ets:lookup(?TAB, Name),
    Info = #{
        state => State,
        failures => failures(State, Ring, Opts, now(Clock)),
        probes_left => case State of half_open -> max(Probes, 0); _ -> 0 end,
        successes => B#b.successes,
        until => Until,
        transitions => B#b.transitions,
        since => B#b.since,
        options => case Clock of monotonic -> Opts; _ -> Opts#{clock => Clock} end
    },
    {{ok, Info}, B};
op(_Other, _Name, B) ->
    {{error, unknown_call}, B}.

open(Name, Reason, B) ->
    [{_, From, _, _, Ring, #{reset_ms := R}, Clock}] = ets:lookup(?TAB, Name),
    Now = now(Clock),
    ok = atomics:put(Ring, 1, 0),
    true = ets:update_element(?TAB, Name, [{2, open}, {3, 0}, {4, Now + R}]),
    report(Name, From, open, Reason),
    B#b{successes = 0, since = Now, transitions = B#b.transitions + 1}.

close(Name, Reason, B) ->
    [{_, From, _, _, Ring, _, Clock}] = ets:lookup(?TAB, Name),
    ok = atomics:put(Ring, 1, 0),
    true = ets:update_element(?TAB, Name, [{2, closed}, {3, 0}, {4, undefined}]),
    report(Name, From, closed, Reason),
    B#b{successes = 0, since = now(Clock), transitions = B#b.transitions + 1}.

report(Name, From, To, Reason) ->
    Detail = #{breaker => Name, from => From, to => To, reason => Reason},
    _ = autonomic_events:publish(breaker_state_changed, Detail),
    ok = autonomic_metrics:inc(autonomic_breaker_transitions_total, #{breaker => Name, from => From, to => To}),
    Level = case To of open -> warning; _ -> notice end,
    logger:log(Level, "circuit breaker ~p: ~p -> ~p (~p)", [Name, From, To, Reason], ?LOG#{breaker => Name}).

%% A timer for the next deadline of an open or half-open breaker, in real milliseconds; with a
%% clock of its own, the deadline is checked against that clock when the timer fires.
arm(Name, B) ->
    B1 = cancel_timer(B),
    case ets:lookup(?TAB, Name) of
        [{_, State, _, Until, _, _, Clock}] when State =:= open; State =:= half_open ->
            Ms = max(1, min(Until - now(Clock), 16#FFFFFFF)),
            B1#b{timer = erlang:send_after(Ms, self(), {deadline, Name, B1#b.gen})};
        _ ->
            B1
    end.

cancel(Name, Bs) ->
    case Bs of
        #{Name := B} -> cancel_timer(B);
        #{} -> ok
    end.

cancel_timer(#b{timer = undefined} = B) ->
    B;
cancel_timer(#b{timer = T} = B) ->
    _ = erlang:cancel_timer(T, [{async, true}, {info, false}]),
    B#b{timer = undefined}.

state(Name) ->
    ets:lookup_element(?TAB, Name, 2).

failures(closed, Ring, #{threshold := N, window_ms := W}, Now) ->
    K = atomics:get(Ring, 1),
    Times = [atomics:get(Ring, 2 + I rem N) || I <- lists:seq(max(1, K - N + 1), K)],
    length([T || T <- Times, Now - T < W]);
failures(_, _, _, _) ->
    0.

now(monotonic) -> erlang:monotonic_time(millisecond);
now({M, F}) -> M:F().

code(closed) -> 0;
code(half_open) -> 1;
code(open) -> 2.
