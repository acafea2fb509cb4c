%%% @doc Backend health checks. Each registered check runs every `interval' ms (first run at
%%% once) in a process of its own, so a check that hangs or crashes never blocks this process,
%%% the monitor, or the other checks. A run succeeds when the check returns `ok', `true' or
%%% `{ok, _}'; it fails when it returns anything else, raises, or is still running after
%%% `timeout' ms (it is then killed). After `failures_before_down' consecutive failures the
%%% backend is down (`backend_down' `#{check, reason, failures}'); the first success after
%%% that brings it up (`backend_up' `#{check, down_for_ms}').
%%%
%%% Runs are on a fixed schedule (registration time plus whole intervals): a failing backend is
%%% reported down within `interval * failures_before_down' plus one interval of starting to
%%% fail, as long as `timeout' does not exceed `interval'. A run still going when the next one
%%% is due makes that one skipped, not queued.
-module(mape_k_checks).
-behaviour(gen_server).

-export([start_link/0, register/3, unregister/1, status/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-export_type([check/0, opts/0, name/0]).

-define(LOG, #{domain => [autonomic, monitor]}).

-type name() :: atom() | binary().
-type check() :: {module(), atom(), [term()]} | fun(() -> term()).
-type opts() :: #{interval => pos_integer(), timeout => pos_integer(), failures_before_down => pos_integer()}.

-record(check, {
    name :: name(),
    run :: check(),
    interval :: pos_integer(),
    timeout :: pos_integer(),
    fbd :: pos_integer(),
    state = unknown :: unknown | up | down,
    failures = 0 :: non_neg_integer(),
    down_since :: integer() | undefined,
    last_result :: term(),
    last_run_at :: integer() | undefined,
    next :: integer(),
    timer :: reference(),
    worker :: {pid(), reference(), reference(), integer()} | undefined
}).

%%% API

%% @doc Starts the check runner (from the monitor's supervisor).
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Registers (or replaces) a check. Options: `interval' (ms, default 5,000), `timeout' (ms,
%% default the smaller of 1,000 and the interval), `failures_before_down' (default 3). Errors
%% name the problem: `{invalid_check_name, N}', `{invalid_check, C}', `{invalid_option, K, V}'.
-spec register(name(), check(), opts()) -> ok | {error, term()}.
register(Name, _Check, _Opts) when not (is_atom(Name) orelse is_binary(Name)) ->
    {error, {invalid_check_name, Name}};
register(Name, Check, Opts) ->
    case {valid_check(Check), options(Opts)} of
        {false, _} -> {error, {invalid_check, Check}};
        {true, {error, _} = E} -> E;
        {true, {ok, O}} -> gen_server:call(?MODULE, {register, Name, Check, O})
    end.

%% @doc Removes a check, killing its run if one is going (idempotent).
-spec unregister(name()) -> ok.
unregister(Name) ->
    gen_server:call(?MODULE, {unregister, Name}).

%% @doc Every check: `state' (`unknown' before the first verdict, `up', `down'), consecutive
%% `failures', `last_result', `last_run_at' (system time, ms) and its options.
-spec status() -> #{name() => map()}.
status() ->
    gen_server:call(?MODULE, status).

%%% gen_server

%% @private
-spec init([]) -> {ok, #{name() => #check{}}}.
init([]) ->
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call({register, Name, Run, #{interval := I, timeout := T, failures_before_down := F}}, _From, Checks) ->
    Checks1 = stop_check(Name, Checks),
    Now = now_ms(),
    C = start_run(#check{name = Name, run = Run, interval = I, timeout = T, fbd = F, next = Now,
                         timer = make_ref()}),
    ok = autonomic_metrics:set(autonomic_health_check_up, #{check => Name}, 0),
    {reply, ok, Checks1#{Name => schedule(C)}};
handle_call({unregister, Name}, _From, Checks) ->
    {reply, ok, stop_check(Name, Checks)};
handle_call(status, _From, Checks) ->
    {reply, maps:map(fun(_, C) -> info(C) end, Checks), Checks};
handle_call(_Req, _From, Checks) ->
    {reply, {error, unknown_call}, Checks}.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, Checks) ->
    {noreply, Checks}.

%% @private
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({timeout, TRef, {run, Name}}, Checks) ->
    case Checks of
        #{Name := #check{timer = TRef, worker = undefined} = C} ->
            {noreply, Checks#{Name := schedule(start_run(C))}};
        #{Name := #check{timer = TRef} = C} ->
            %% Still running: this run is skipped; the timeout will end the one going.
            {noreply, Checks#{Name := schedule(C)}};
        _ ->
            {noreply, Checks}
    end;
handle_info({timeout, _TRef, {check_timeout, Name, MRef}}, Checks) ->
    case Checks of
        #{Name := #check{worker = {Pid, MRef, _, _}} = C} ->
            exit(Pid, kill),
            true = erlang:demonitor(MRef, [flush]),
            {noreply, Checks#{Name := result(C, {failure, timeout})}};
        _ ->
            {noreply, Checks}
    end;
handle_info({?MODULE, Pid, Result}, Checks) ->
    case [C || #check{worker = {P, _, _, _}} = C <- maps:values(Checks), P =:= Pid] of
        [#check{name = Name, worker = {_, MRef, TRef, _}} = C] ->
            _ = erlang:cancel_timer(TRef),
            true = erlang:demonitor(MRef, [flush]),
            {noreply, Checks#{Name := result(C, Result)}};
        [] ->
            {noreply, Checks}
    end;
handle_info({'DOWN', MRef, process, _Pid, Reason}, Checks) ->
    %% The worker died without a verdict (killed, or exited from a process it linked to).
    case [C || #check{worker = {_, M, _, _}} = C <- maps:values(Checks), M =:= MRef] of
        [#check{name = Name, worker = {_, _, TRef, _}} = C] ->
            _ = erlang:cancel_timer(TRef),
            {noreply, Checks#{Name := result(C, {failure, {exited, Reason}})}};
        [] ->
            {noreply, Checks}
    end;
handle_info(_Other, Checks) ->
    {noreply, Checks}.

%%% Internals

valid_check({M, F, A}) -> is_atom(M) andalso is_atom(F) andalso is_list(A);
valid_check(Fun) -> is_function(Fun, 0).

options(Opts) when is_map(Opts) ->
    I = maps:get(interval, Opts, 5000),
    T = maps:get(timeout, Opts, min(1000, I)),
    F = maps:get(failures_before_down, Opts, 3),
    Bad = [{K, V} || {K, V} <- maps:to_list(Opts),
                     not lists:member(K, [interval, timeout, failures_before_down])
                         orelse not (is_integer(V) andalso V > 0)],
    case Bad of
        [] -> {ok, #{interval => I, timeout => T, failures_before_down => F}};
        [{K, V} | _] -> {error, {invalid_option, K, V}}
    end;
options(Opts) ->
    {error, {invalid_option, opts, Opts}}.

start_run(#check{name = Name, run = Run, timeout = T} = C) ->
    Parent = self(),
    {Pid, MRef} = spawn_monitor(fun() -> Parent ! {?MODULE, self(), run(Run)} end),
    TRef = erlang:start_timer(T, self(), {check_timeout, Name, MRef}),
    C#check{worker = {Pid, MRef, TRef, now_ms()}, last_run_at = erlang:system_time(millisecond)}.

%% Runs in the worker: the verdict.
run(Run) ->
    try call(Run) of
        ok -> ok;
        true -> ok;
        {ok, _} -> ok;
        Other -> {failure, {returned, Other}}
    catch
        Class:Reason -> {failure, {crashed, Class, Reason}}
    end.

call({M, F, A}) -> apply(M, F, A);
call(Fun) -> Fun().

result(#check{name = Name, worker = {_, _, _, Started}} = C0, Result) ->
    C = C0#check{worker = undefined, last_result = Result},
    Seconds = (now_ms() - Started) / 1000,
    _ = autonomic_metrics:observe(autonomic_health_check_duration_seconds, #{check => Name}, Seconds),
    case Result of
        ok ->
            ok = autonomic_metrics:inc(autonomic_health_check_runs_total, #{check => Name, result => ok}),
            ok = autonomic_metrics:set(autonomic_health_check_up, #{check => Name}, 1),
            case C#check.state of
                down ->
                    DownFor = now_ms() - C#check.down_since,
                    _ = autonomic_events:publish(backend_up, #{check => Name, down_for_ms => DownFor}),
                    logger:notice("backend ~p up after ~b ms", [Name, DownFor], ?LOG);
                _ ->
                    ok
            end,
            C#check{state = up, failures = 0, down_since = undefined};
        {failure, Why} ->
            ok = autonomic_metrics:inc(autonomic_health_check_runs_total, #{check => Name, result => failure}),
            N = C#check.failures + 1,
            case N >= C#check.fbd andalso C#check.state =/= down of
                true ->
                    _ = autonomic_events:publish(backend_down, #{check => Name, reason => Why, failures => N}),
                    ok = autonomic_metrics:set(autonomic_health_check_up, #{check => Name}, 0),
                    logger:error("backend ~p down after ~b failures: ~p", [Name, N, Why], ?LOG),
                    C#check{state = down, failures = N, down_since = now_ms()};
                false ->
                    C#check{failures = N}
            end
    end.

schedule(#check{name = Name, next = Prev, interval = I} = C) ->
    Now = now_ms(),
    Next = case Prev + I > Now of
        true -> Prev + I;
        false -> Now + I - ((Now - Prev) rem I)
    end,
    TRef = erlang:start_timer(Next, self(), {run, Name}, [{abs, true}]),
    C#check{next = Next, timer = TRef}.

stop_check(Name, Checks) ->
    case Checks of
        #{Name := #check{timer = TRef, worker = W}} ->
            _ = erlang:cancel_timer(TRef),
            case W of
                {Pid, MRef, WTRef, _} ->
                    _ = erlang:cancel_timer(WTRef),
                    true = erlang:demonitor(MRef, [flush]),
                    exit(Pid, kill);
                undefined ->
                    ok
            end,
            maps:remove(Name, Checks);
        #{} ->
            Checks
    end.

info(#check{state = S, failures = F, last_result = R, last_run_at = At, interval = I, timeout = T, fbd = B}) ->
    #{state => S, failures => F, last_result => R, last_run_at => At, interval => I, timeout => T,
      failures_before_down => B}.

now_ms() ->
    erlang:monotonic_time(millisecond).
