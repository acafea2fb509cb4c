%%% @doc Load shedding with priorities: {@link admit/1} admits or rejects a request so that the
%%% fraction set by {@link set/2} is shed, from the requests below a priority threshold first.
%%%
%%% ```
%%% 1> autonomic_shed:set(30, 5).      % shed 30% of requests, those below priority 5 first
%%% {ok,off}
%%% 2> autonomic_shed:admit(1).
%%% false
%%% '''
%%%
%%% Semantics of `set(Percent, Below)': over any long run of requests, `Percent' of all of them
%%% are rejected. Requests with priority below `Below' ("low") are rejected first: as long as
%%% low requests are at least `Percent' of the traffic, only they are shed (a fraction
%%% `Percent / LowShare' of them), and requests at or above `Below' ("high") all pass. When
%%% there are too few low requests to reach `Percent', every low request is rejected and high
%%% requests make up the rest. `set(0, _)' and {@link clear/0} shed nothing.
%%%
%%% How (deterministic, no randomness): a credit counter per scheduler. Every request adds
%%% `Percent / 100' of a credit; a low request is rejected when the counter holds a whole
%%% credit, and takes it; a high request only when the counter holds 32 credits, which happens
%%% only when low requests are too few to take the credits as fast as they come (a run of high
%%% requests alone would need 32 / (Percent / 100) of them in a row). So the rejected fraction is
%%% exact up to the few credits left in the counters (at most 32 per scheduler in all, whatever
%%% the number of requests), with no estimate of the traffic mix and no lag when it changes. The
%%% counters are `atomics' indexed by scheduler: a request is one `add_get' on its scheduler's
%%% counter and a few reads, lock-free and without contention between schedulers.
-module(autonomic_shed).
-behaviour(gen_server).

-compile({no_auto_import, [get/0]}).

-export([start_link/0]).
-export([admit/1, set/2, clear/0, get/0, stats/0, metrics/0]).
-export([init/1, handle_call/3, handle_cast/2, terminate/2]).

-export_type([setting/0]).

-define(KEY, ?MODULE).
-define(LOG, #{domain => [autonomic, execute]}).
%% One credit, in fixed point.
-define(ONE, 1048576).
%% Credits a high-priority request waits for.
-define(HIGH, (32 * ?ONE)).
%% Counters: admitted, rejected below the threshold, rejected at or above it.
-define(ADMITTED, 1).
-define(REJECTED_LOW, 2).
-define(REJECTED_HIGH, 3).

-type setting() :: off | {Percent :: 0..100, Below :: integer()}.

%%% API

%% @doc Starts the owner of the shedding state (from `autonomic_actuation_sup').
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc `true' to admit a request of priority `Priority' (an integer; higher is more important),
%% `false' to reject it. Runs in the caller: a `persistent_term' read and a few atomics.
-spec admit(integer()) -> boolean() | {error, {invalid_priority, term()}}.
admit(Priority) when is_integer(Priority) ->
    case persistent_term:get(?KEY, undefined) of
        {Cfg, Credit, Counts} ->
            case atomics:get(Cfg, 1) of
                0 ->
                    counters:add(Counts, ?ADMITTED, 1),
                    true;
                Add ->
                    Ix = erlang:system_info(scheduler_id),
                    V = atomics:add_get(Credit, Ix, Add),
                    {Limit, Which} = case Priority < atomics:get(Cfg, 2) of
                        true -> {?ONE, ?REJECTED_LOW};
                        false -> {?HIGH, ?REJECTED_HIGH}
                    end,
                    case V >= Limit of
                        true ->
                            atomics:sub(Credit, Ix, ?ONE),
                            counters:add(Counts, Which, 1),
                            false;
                        false ->
                            counters:add(Counts, ?ADMITTED, 1),
                            true
                    end
            end;
        undefined ->
            %% The application is not running: nothing is shed.
            true
    end;
admit(Priority) ->
    {error, {invalid_priority, Priority}}.

%% @doc Sheds `Percent' (an integer 0..100) of requests, those below priority `Below' first.
%% Returns the setting it replaced.
-spec set(0..100, integer()) -> {ok, setting()} | {error, term()}.
set(Percent, Below) when is_integer(Percent), Percent >= 0, Percent =< 100, is_integer(Below) ->
    gen_server:call(?MODULE, {set, {Percent, Below}});
set(Percent, Below) when is_integer(Below) ->
    {error, {invalid_percent, Percent}};
set(_Percent, Below) ->
    {error, {invalid_priority, Below}}.

%% @doc Stops shedding; returns the setting it replaced.
-spec clear() -> {ok, setting()}.
clear() ->
    gen_server:call(?MODULE, {set, off}).

%% @doc The setting in force.
-spec get() -> setting().
get() ->
    {Cfg, _, _} = persistent_term:get(?KEY),
    case atomics:get(Cfg, 3) of
        0 -> off;
        _ -> {atomics:get(Cfg, 4), atomics:get(Cfg, 2)}
    end.

%% @doc Requests admitted and rejected (below and at or above the threshold) since start.
-spec stats() -> #{admitted := non_neg_integer(), rejected_below := non_neg_integer(),
                   rejected_above := non_neg_integer()}.
stats() ->
    {_, _, Counts} = persistent_term:get(?KEY),
    #{admitted => counters:get(Counts, ?ADMITTED), rejected_below => counters:get(Counts, ?REJECTED_LOW),
      rejected_above => counters:get(Counts, ?REJECTED_HIGH)}.

%% @doc Scrape-time metrics (registered as a collector).
-spec metrics() -> [{atom(), counter | gauge, iodata(), [{map(), number()}]}].
metrics() ->
    case persistent_term:get(?KEY, undefined) of
        undefined ->
            [];
        _ ->
            #{admitted := A, rejected_below := RL, rejected_above := RH} = stats(),
            Pct = case get() of off -> 0; {P, _} -> P end,
            [{autonomic_shed_requests_total, counter, "Requests seen by autonomic_shed:admit/1, by outcome.",
              [{#{outcome => admitted}, A}, {#{outcome => rejected_below}, RL}, {#{outcome => rejected_above}, RH}]},
             {autonomic_shed_percent, gauge, "Percent of requests being shed.", [{#{}, Pct}]}]
    end.

%%% gen_server

%% @private
-spec init([]) -> {ok, #{}}.
init([]) ->
    %% terminate/2 turns shedding off: the refs outlive this process in the persistent term.
    process_flag(trap_exit, true),
    %% Config: 1 credit per request (fixed point, 0 = off), 2 threshold, 3 on/off, 4 percent.
    Cfg = atomics:new(4, [{signed, true}]),
    Credit = atomics:new(erlang:system_info(schedulers), [{signed, true}]),
    Counts = counters:new(3, [write_concurrency]),
    %% Put once per start of this process: admit/1 reads it without copying.
    ok = persistent_term:put(?KEY, {Cfg, Credit, Counts}),
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call({set, Setting}, _From, S) ->
    Previous = get(),
    {Cfg, Credit, _} = persistent_term:get(?KEY),
    ok = atomics:put(Cfg, 1, 0),
    [ok = atomics:put(Credit, I, 0) || I <- lists:seq(1, erlang:system_info(schedulers))],
    case Setting of
        off ->
            ok = atomics:put(Cfg, 3, 0);
        {Percent, Below} ->
            ok = atomics:put(Cfg, 2, Below),
            ok = atomics:put(Cfg, 4, Percent),
            ok = atomics:put(Cfg, 3, 1),
            ok = atomics:put(Cfg, 1, Percent * ?ONE div 100)
    end,
    case Setting =:= Previous of
        true -> ok;
        false -> logger:notice("load shedding: ~p (was ~p)", [Setting, Previous], ?LOG)
    end,
    {reply, {ok, Previous}, S};
handle_call(_Req, _From, S) ->
    {reply, {error, unknown_call}, S}.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) ->
    {noreply, S}.

%% @private
-spec terminate(term(), map()) -> ok.
terminate(_Reason, _S) ->
    {Cfg, _, _} = persistent_term:get(?KEY),
    ok = atomics:put(Cfg, 1, 0),
    ok = atomics:put(Cfg, 3, 0).
