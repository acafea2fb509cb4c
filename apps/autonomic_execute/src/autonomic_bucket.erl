%%% @doc Per-tenant token buckets, and the tenant controls the governor's actions set: a throttle
%%% (percent of the tenant's rate taken away) and a pause.
%%%
%%% ```
%%% 1> autonomic_bucket:set_rate(<<"acme">>, 1000, 50).   % 1,000 requests/s, bursts of 50
%%% ok
%%% 2> autonomic_bucket:throttle(<<"acme">>, 50).         % the governor said {throttle, 50}
%%% {ok,0}
%%% 3> autonomic_bucket:take(<<"acme">>).                 % now 500/s
%%% true
%%% '''
%%%
%%% A tenant's admitted rate is `Rate * (100 - Throttle) / 100' requests per second, with bursts
%%% of up to `Burst' requests; a paused tenant (or one throttled by 100) is admitted nothing. A
%%% tenant with no rate set has no rate limit (its throttle still scales its quotas in
%%% {@link autonomic_entitlements}; a pause still stops it). {@link take/1} for a tenant this
%%% module does not know answers `true'.
%%%
%%% How: the generic cell rate algorithm (GCRA, the "virtual scheduling" form of a token
%%% bucket), which needs one word of state, the theoretical arrival time (TAT). With emission
%%% interval `T = 1 / rate' and tolerance `Tau = (Burst - 1) * T', a request at `Now' is admitted
%%% when `max(TAT, Now) - Now =< Tau', and then moves TAT to `max(TAT, Now) + T'. The TAT, `T'
%%% and `Tau' (in the emulator's native time unit, nanoseconds on Linux) live in an `atomics'
%%% array per tenant; `take/1' is an ETS read of the
%%% array's reference and a `compare_exchange' loop on the TAT, lock-free, in the caller. The
%%% admitted count over any interval of length `D' is at most `Burst + D * rate'. Settings
%%% change through this process, which owns the table.
-module(autonomic_bucket).
-behaviour(gen_server).

-export([start_link/0]).
-export([take/1, set_rate/3, clear_rate/1, throttle/2, pause/1, resume/1, set_paused/2,
         controls/1, info/1, list/0, metrics/0]).
-export([init/1, handle_call/3, handle_cast/2]).

-define(TAB, autonomic_buckets).
%% The persistent term holding the table's id (see init/1).
-define(TID, ?TAB).
-define(LOG, #{domain => [autonomic, execute]}).
%% Atomics: 1 TAT, 2 interval (0: no limit, -1: nothing admitted), 3 tolerance.
-define(TAT, 1).
-define(INTERVAL, 2).
-define(TAU, 3).

-type tenant() :: autonomic:tenant().

%%% API

%% @doc Starts the owner of the buckets (from `autonomic_actuation_sup').
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Takes one token from `Tenant''s bucket: `true' when the request may go ahead.
-spec take(tenant()) -> boolean() | {error, invalid_tenant}.
take(Tenant) when is_binary(Tenant) ->
    %% lookup/2: a tenant without settings (the common case) is a plain [] here, not a raised
    %% and caught badarg. A badarg means no table: the application is not running, and nothing
    %% is limited.
    try ets:lookup(persistent_term:get(?TID), Tenant) of
        [{_, Ref, _, _, _}] ->
            case atomics:get(Ref, ?INTERVAL) of
                0 -> true;
                -1 -> false;
                T -> gcra(Ref, T, atomics:get(Ref, ?TAU), erlang:monotonic_time())
            end;
        [] ->
            true
    catch
        error:badarg -> true
    end;
take(_) ->
    {error, invalid_tenant}.

gcra(Ref, T, Tau, Now) ->
    Tat = atomics:get(Ref, ?TAT),
    Base = max(Tat, Now),
    case Base - Now =< Tau of
        true ->
            case atomics:compare_exchange(Ref, ?TAT, Tat, Base + T) of
                ok -> true;
                _ -> gcra(Ref, T, Tau, Now)
            end;
        false ->
            false
    end.

%% @doc Sets `Tenant''s base rate (requests per second, a positive number) and burst (a positive
%% integer).
-spec set_rate(tenant(), number(), pos_integer()) -> ok | {error, term()}.
set_rate(Tenant, Rate, Burst) ->
    case valid_tenant(Tenant) of
        false -> {error, invalid_tenant};
        true when not (is_number(Rate) andalso Rate > 0) -> {error, {invalid_rate, Rate}};
        true when not (is_integer(Burst) andalso Burst > 0) -> {error, {invalid_burst, Burst}};
        true -> call({rate, Tenant, {Rate, Burst}})
    end.

%% @doc Removes `Tenant''s rate limit (its throttle and pause stay).
-spec clear_rate(tenant()) -> ok | {error, invalid_tenant}.
clear_rate(Tenant) ->
    case valid_tenant(Tenant) of
        true -> call({rate, Tenant, none});
        false -> {error, invalid_tenant}
    end.

%% @doc Throttles `Tenant' by `Percent' (an integer 0..100: the share of its rate taken away; 0
%% lifts the throttle). Returns the throttle it replaced.
-spec throttle(tenant(), 0..100) -> {ok, 0..100} | {error, term()}.
throttle(Tenant, Percent) ->
    case valid_tenant(Tenant) of
        false -> {error, invalid_tenant};
        true when is_integer(Percent), Percent >= 0, Percent =< 100 -> call({throttle, Tenant, Percent});
        true -> {error, {invalid_percent, Percent}}
    end.

%% @doc Pauses `Tenant': nothing is admitted until {@link resume/1}. Returns whether it was
%% paused already.
-spec pause(tenant()) -> {ok, boolean()} | {error, invalid_tenant}.
pause(Tenant) ->
    set_paused(Tenant, true).

%% @doc Ends a pause; returns whether the tenant was paused.
-spec resume(tenant()) -> {ok, boolean()} | {error, invalid_tenant}.
resume(Tenant) ->
    set_paused(Tenant, false).

%% @doc Pauses (`true') or resumes (`false') `Tenant'; returns the previous value.
-spec set_paused(tenant(), boolean()) -> {ok, boolean()} | {error, term()}.
set_paused(Tenant, Paused) ->
    case valid_tenant(Tenant) of
        false -> {error, invalid_tenant};
        true when is_boolean(Paused) -> call({paused, Tenant, Paused});
        true -> {error, {invalid_paused, Paused}}
    end.

%% @doc `Tenant''s throttle and pause (an ETS read): `{0, false}' for a tenant never throttled
%% or paused.
-spec controls(tenant()) -> {0..100, boolean()}.
controls(Tenant) ->
    try ets:lookup(persistent_term:get(?TID), Tenant) of
        [{_, _, _, Throttle, Paused}] -> {Throttle, Paused};
        [] -> {0, false}
    catch
        error:badarg -> {0, false}
    end.

%% @doc `Tenant''s settings and the rate they admit (`infinity' without a rate limit).
-spec info(tenant()) -> {ok, map()} | {error, not_found | invalid_tenant}.
info(Tenant) ->
    case valid_tenant(Tenant) of
        false ->
            {error, invalid_tenant};
        true ->
            case ets:lookup(?TAB, Tenant) of
                [{_, _, Rate, Throttle, Paused}] ->
                    {R, B} = case Rate of none -> {none, none}; {R0, B0} -> {R0, B0} end,
                    {ok, #{rate => R, burst => B, throttle => Throttle, paused => Paused,
                           admitted_rate => admitted_rate(Rate, Throttle, Paused)}};
                [] ->
                    {error, not_found}
            end
    end.

%% @doc Every tenant with a setting: `{Tenant, Info}' as in {@link info/1}.
-spec list() -> [{tenant(), map()}].
list() ->
    lists:sort([{T, I} || {T, _, _, _, _} <- ets:tab2list(?TAB), {ok, I} <- [info(T)]]).

%% @doc Scrape-time metrics: the throttled and paused tenants (registered as a collector).
-spec metrics() -> [{atom(), gauge, iodata(), [{map(), number()}]}].
metrics() ->
    Rows = case ets:whereis(?TAB) of
        undefined -> [];
        _ -> ets:tab2list(?TAB)
    end,
    [{autonomic_tenant_throttle_percent, gauge, "Throttle in force per tenant (tenants with a throttle).",
      [{#{tenant => T}, P} || {T, _, _, P, _} <- Rows, P > 0]},
     {autonomic_tenant_paused, gauge, "1 for each paused tenant.",
      [{#{tenant => T}, 1} || {T, _, _, _, true} <- Rows]}].

%%% gen_server

%% @private
-spec init([]) -> {ok, #{}}.
init([]) ->
    %% {Tenant, AtomicsRef, Rate :: {PerSecond, Burst} | none, Throttle, Paused}
    _ = ets:new(?TAB, [named_table, protected, set | autonomic_execute_config:table_options()]),
    %% Read by id: resolving a table's name costs more than the read. Put once per start of this
    %% process (replacing a persistent term makes the runtime scan every process).
    ok = persistent_term:put(?TID, ets:whereis(?TAB)),
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call({What, Tenant, Value}, _From, S) ->
    {Ref, Rate, Throttle, Paused} = case ets:lookup(?TAB, Tenant) of
        [{_, R0, Rate0, Th0, P0}] -> {R0, Rate0, Th0, P0};
        [] -> {new_ref(), none, 0, false}
    end,
    {Reply, Row} = case What of
        rate -> {ok, {Tenant, Ref, Value, Throttle, Paused}};
        throttle -> {{ok, Throttle}, {Tenant, Ref, Rate, Value, Paused}};
        paused -> {{ok, Paused}, {Tenant, Ref, Rate, Throttle, Value}}
    end,
    ok = apply_row(Row),
    {reply, Reply, S};
handle_call(_Req, _From, S) ->
    {reply, {error, unknown_call}, S}.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) ->
    {noreply, S}.

%%% Internal

%% A tenant with nothing set has no row; otherwise the atomics follow the row.
apply_row({Tenant, _Ref, none, 0, false}) ->
    true = ets:delete(?TAB, Tenant),
    ok;
apply_row({Tenant, Ref, Rate, Throttle, Paused} = Row) ->
    {T, Tau} = case {Rate, admitted_rate(Rate, Throttle, Paused)} of
        {_, 0} -> {-1, 0};
        {none, infinity} -> {0, 0};
        {{_, Burst}, PerSecond} ->
            I = max(1, round(erlang:convert_time_unit(1, second, native) / PerSecond)),
            {I, (Burst - 1) * I}
    end,
    %% The tolerance grows with the interval: a take/1 between the two writes must see the
    %% smaller tolerance of the two settings, so the interval goes first when it grows and last
    %% when it shrinks.
    case T > atomics:get(Ref, ?INTERVAL) of
        true -> ok = atomics:put(Ref, ?INTERVAL, T), ok = atomics:put(Ref, ?TAU, Tau);
        false -> ok = atomics:put(Ref, ?TAU, Tau), ok = atomics:put(Ref, ?INTERVAL, T)
    end,
    true = ets:insert(?TAB, Row),
    logger:info("tenant ~ts: rate ~p, throttle ~b%, paused ~p", [Tenant, Rate, Throttle, Paused], ?LOG),
    ok.

admitted_rate(_Rate, _Throttle, true) -> 0;
admitted_rate(_Rate, 100, _) -> 0;
admitted_rate(none, _Throttle, false) -> infinity;
admitted_rate({PerSecond, _}, Throttle, false) -> PerSecond * (100 - Throttle) / 100.

new_ref() ->
    Ref = atomics:new(3, [{signed, true}]),
    %% A fresh bucket is full: its TAT is now.
    ok = atomics:put(Ref, ?TAT, erlang:monotonic_time()),
    Ref.

valid_tenant(T) -> is_binary(T) andalso byte_size(T) > 0 andalso byte_size(T) =< 256.

call(Request) ->
    gen_server:call(?MODULE, Request).
