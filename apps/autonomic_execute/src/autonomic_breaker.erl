%%% @doc Circuit breakers for application code: closed, open and half-open, with the hot path
%%% ({@link ask/1}) a single ETS read in the calling process.
%%%
%%% ```
%%% 1> autonomic_breaker:install(payments, #{threshold => 5, window_ms => 10000, reset_ms => 30000,
%%%                                         probes => 3, successes => 2}).
%%% ok
%%% 2> autonomic_breaker:run(payments, fun() -> payments_api:charge(Order) end).
%%% {ok,<<"ch_1">>}
%%% '''
%%%
%%% The state machine (requirements, each checked by a test):
%%% <ol>
%%%   <li>A breaker is installed `closed'. While closed, {@link ask/1} answers `ok' and costs one
%%%       ETS read (no process hop, no write, no time read).</li>
%%%   <li>`threshold' failures ({@link melt/1}) whose times fall within the last `window_ms'
%%%       (a sliding window: the failures at `T > Now - window_ms') open it.</li>
%%%   <li>While open, `ask' answers `blown'; failures and successes reported meanwhile change
%%%       nothing.</li>
%%%   <li>`reset_ms' after opening it turns half-open and lets `probes' requests through: the
%%%       first `probes' asks answer `ok', later ones `blown'.</li>
%%%   <li>In half-open, one failure opens it again (for another `reset_ms'); `successes'
%%%       successful probes ({@link success/1}) close it, with an empty failure window.</li>
%%%   <li>A half-open round that reaches neither outcome within `reset_ms' (a probe's caller died
%%%       without reporting) starts a new round: `probes' fresh probes, no successes counted.</li>
%%%   <li>{@link reset/1} closes it at once, with an empty failure window.</li>
%%%   <li>Every change of state is published on the event bus as `breaker_state_changed'
%%%       `#{breaker, from, to, reason}', counted in `autonomic_breaker_transitions_total' and
%%%       visible in the gauge `autonomic_breaker_state' (0 closed, 1 half-open, 2 open).</li>
%%%   <li>Bad input returns `{error, Reason}' and changes nothing; an unknown breaker is
%%%       `{error, not_found}'.</li>
%%% </ol>
%%%
%%% How: each breaker is a row of a public ETS table owned by {@link autonomic_breaker_server}.
%%% `ask' reads the state element (by the table's id, kept in `persistent_term': resolving a
%%% table's name costs more than the read); in half-open it takes a probe with `ets:update_counter/3'. A
%%% failure in the closed state is recorded by the caller itself, lock-free, in an `atomics'
%%% ring of the last `threshold' failure times; only the failure that completes `threshold'
%%% within the window makes a (synchronous) call to the server, which opens the breaker. All
%%% changes of state are made by the server, one at a time; the time-driven ones (open to
%%% half-open, a new half-open round) both by a timer and lazily by the first call that finds
%%% the deadline passed, so the state a caller sees depends only on the clock, never on when a
%%% timer message was handled.
%%%
%%% Compared with jlouis/fuse (the model for the fast path and for stating requirements): fuse
%%% has no half-open state (a blown fuse heals all at once after its reset time); here traffic
%%% comes back gradually, through probes.
-module(autonomic_breaker).

-export([install/2, remove/1, ask/1, run/2, melt/1, success/1, reset/1, info/1, list/0]).
-export([validate/2, defaults/0]).

-export_type([name/0, options/0, state/0, info/0]).

-define(TAB, autonomic_breakers).
%% The persistent term holding the table's id, put by autonomic_breaker_server when it creates
%% the table: a lookup by id skips the resolution of the table's name, which costs more than the
%% read itself (and an atom key is the cheapest persistent term to find).
-define(TID, autonomic_breakers).
-define(SERVER, autonomic_breaker_server).

-type name() :: atom() | binary().
%% Breakers are named by atoms or binaries (the name is a metric label).

-type options() :: #{
    threshold => pos_integer(),
    window_ms => pos_integer(),
    reset_ms => pos_integer(),
    probes => pos_integer(),
    successes => pos_integer(),
    clock => {module(), atom()}
}.
%% `clock' (default: `erlang:monotonic_time(millisecond)') names a function of arity 0 that
%% returns the time in milliseconds; tests and simulations drive breakers with their own clock.

-type state() :: closed | open | half_open.

-type info() :: #{
    state := state(),
    failures := non_neg_integer(),
    probes_left := non_neg_integer(),
    successes := non_neg_integer(),
    until := integer() | undefined,
    transitions := non_neg_integer(),
    since := integer(),
    options := options()
}.
%% `failures': failures within the window (closed state); `until': when an open breaker turns
%% half-open, or when a half-open round ends (the breaker's clock); `since': when it entered its
%% state; `transitions': changes of state since it was installed.

%%% API

%% @doc Built-in options: 5 failures within 10 s open the breaker; it turns half-open after
%% 30 s; one probe, one success to close.
-spec defaults() -> options().
defaults() ->
    #{threshold => 5, window_ms => 10000, reset_ms => 30000, probes => 1, successes => 1}.

%% @doc Installs (or re-installs, starting afresh in `closed') the breaker `Name'. `Opts' is
%% merged over {@link defaults/0}; `successes' must not exceed `probes'.
-spec install(name(), options()) -> ok | {error, term()}.
install(Name, Opts) ->
    case validate(Name, Opts) of
        ok -> gen_server:call(?SERVER, {install, Name, maps:merge(defaults(), Opts)});
        {error, _} = Error -> Error
    end.

%% @doc Removes a breaker. Idempotent.
-spec remove(name()) -> ok | {error, term()}.
remove(Name) ->
    case valid_name(Name) of
        true -> gen_server:call(?SERVER, {remove, Name});
        false -> {error, {invalid_name, Name}}
    end.

%% @doc `ok' when a request may go through, `blown' when it must not. An ETS read in the calling
%% process; in half-open, `ok' hands out one of the round's probes, whose outcome the caller
%% reports with {@link success/1} or {@link melt/1} (or lets {@link run/2} do it).
-spec ask(name()) -> ok | blown | {error, not_found}.
ask(Name) ->
    try ets:lookup_element(tab(), Name, 2) of
        closed -> ok;
        open -> ask_open(Name);
        half_open -> ask_half_open(Name)
    catch
        error:badarg -> {error, not_found}
    end.

%% @doc Runs `Fun' if the breaker lets it through and reports its outcome: a raised exception
%% (re-raised to the caller), `error' or `{error, _}' is a failure, any other result a success.
%% Returns what `Fun' returned, `{error, blown}' when the breaker refused, or
%% `{error, not_found}'.
-spec run(name(), fun(() -> Result)) -> Result | {error, blown | not_found}.
run(Name, Fun) when is_function(Fun, 0) ->
    case ask(Name) of
        ok ->
            try Fun() of
                error -> _ = melt(Name), error;
                {error, _} = Error -> _ = melt(Name), Error;
                Result -> _ = success(Name), Result
            catch
                Class:Reason:Stack ->
                    _ = melt(Name),
                    erlang:raise(Class, Reason, Stack)
            end;
        blown ->
            {error, blown};
        {error, not_found} = Error ->
            Error
    end;
run(_Name, Fun) ->
    {error, {invalid_fun, Fun}}.

%% @doc Reports a failure. In the closed state it is recorded lock-free by the caller; it makes a
%% call to the server only when it opens the breaker, or in half-open.
-spec melt(name()) -> ok | {error, not_found}.
melt(Name) ->
    case ets:lookup(tab(), Name) of
        [{_, closed, _, _, Ring, #{threshold := N, window_ms := W}, Clock}] ->
            Now = now(Clock),
            K = atomics:add_get(Ring, 1, 1),
            ok = atomics:put(Ring, 2 + K rem N, Now),
            %% Slot (K + 1) rem N holds the failure N - 1 before this one: the oldest of the
            %% last N. (A concurrent failure may have overwritten it with a newer time, which
            %% only makes the check see the window as fuller than it was by that one failure.)
            case K >= N andalso Now - atomics:get(Ring, 2 + (K + 1) rem N) < W of
                true -> call({trip, Name});
                false -> ok
            end;
        [{_, open, _, Until, _, _, Clock}] ->
            case now(Clock) >= Until of
                true -> call({melt, Name});
                false -> ok
            end;
        [{_, half_open, _, _, _, _, _}] ->
            call({melt, Name});
        [] ->
            {error, not_found}
    end.

%% @doc Reports a success. Counts only in half-open (a call to the server); in the closed state it
%% is one ETS read.
-spec success(name()) -> ok | {error, not_found}.
success(Name) ->
    case ets:lookup(tab(), Name) of
        [{_, closed, _, _, _, _, _}] ->
            ok;
        [{_, open, _, Until, _, _, Clock}] ->
            case now(Clock) >= Until of
                true -> call({success, Name});
                false -> ok
            end;
        [{_, half_open, _, _, _, _, _}] ->
            call({success, Name});
        [] ->
            {error, not_found}
    end.

%% @doc Closes the breaker at once, with an empty failure window.
-spec reset(name()) -> ok | {error, term()}.
reset(Name) ->
    case valid_name(Name) of
        true -> call({reset, Name});
        false -> {error, {invalid_name, Name}}
    end.

%% @doc The breaker's state and counters.
-spec info(name()) -> {ok, info()} | {error, term()}.
info(Name) ->
    case valid_name(Name) of
        true -> call({info, Name});
        false -> {error, {invalid_name, Name}}
    end.

%% @doc Every installed breaker and its state.
-spec list() -> [{name(), state()}].
list() ->
    lists:sort([{N, S} || {N, S, _, _, _, _, _} <- ets:tab2list(?TAB)]).

%% @doc Checks a name and options as {@link install/2} does.
-spec validate(term(), term()) -> ok | {error, term()}.
validate(Name, _Opts) when not (is_atom(Name) orelse is_binary(Name)) ->
    {error, {invalid_name, Name}};
validate(_Name, Opts) when not is_map(Opts) ->
    {error, {invalid_options, Opts}};
validate(_Name, Opts) ->
    Known = [threshold, window_ms, reset_ms, probes, successes, clock],
    case maps:keys(maps:without(Known, Opts)) of
        [K | _] ->
            {error, {unknown_option, K}};
        [] ->
            Bad = [{K, V} || {K, V} <- lists:sort(maps:to_list(Opts)), not valid_option(K, V)],
            Merged = maps:merge(defaults(), Opts),
            case Bad of
                [{K, V} | _] ->
                    {error, {invalid_option, K, V}};
                [] when map_get(successes, Merged) > map_get(probes, Merged) ->
                    {error, {invalid_option, successes, {more_than_probes, map_get(successes, Merged),
                                                         map_get(probes, Merged)}}};
                [] ->
                    ok
            end
    end.

%%% Internal

valid_option(clock, {M, F}) -> is_atom(M) andalso is_atom(F);
valid_option(clock, _) -> false;
%% The ring of failure times has `threshold' slots: bounded to keep install cheap.
valid_option(threshold, V) -> is_integer(V) andalso V >= 1 andalso V =< 100000;
valid_option(_, V) -> is_integer(V) andalso V >= 1.

valid_name(Name) -> is_atom(Name) orelse is_binary(Name).

ask_open(Name) ->
    case ets:lookup(tab(), Name) of
        [{_, open, _, Until, _, _, Clock}] ->
            case now(Clock) >= Until of
                true -> after_call(Name, call({tick, Name}));
                false -> blown
            end;
        _ ->
            %% Changed meanwhile (or removed): ask again.
            ask(Name)
    end.

ask_half_open(Name) ->
    %% The deadline first: a round that has ended is renewed (by the server) before any of its
    %% probes is handed out, so what a caller sees depends only on the clock.
    case ets:lookup(tab(), Name) of
        [{_, half_open, _, Until, _, _, Clock}] ->
            case now(Clock) >= Until of
                true ->
                    after_call(Name, call({tick, Name}));
                false ->
                    try ets:update_counter(tab(), Name, {3, -1, -1, -1}) of
                        Left when Left >= 0 -> ok;
                        _ -> blown
                    catch
                        error:badarg -> {error, not_found}
                    end
            end;
        _ ->
            ask(Name)
    end.

after_call(Name, ok) -> ask(Name);
after_call(_Name, {error, not_found} = Error) -> Error.

tab() ->
    persistent_term:get(?TID).

now(monotonic) -> erlang:monotonic_time(millisecond);
now({M, F}) -> M:F().

call(Request) ->
    gen_server:call(?SERVER, Request).
