%%% @doc Tenant entitlements: what each tenant bought (an SKU with its quotas), where it is in its
%%% lifecycle, and whether a request fits.
%%%
%%% ```
%%% 1> autonomic_entitlements:provision(<<"acme">>, pro).
%%% ok
%%% 2> autonomic_entitlements:activate(<<"acme">>).
%%% ok
%%% 3> autonomic_entitlements:check_quota(<<"acme">>, concurrent, 800).
%%% ok
%%% 4> autonomic_bucket:throttle(<<"acme">>, 50).         % the governor's {throttle, 50}
%%% {ok,0}
%%% 5> autonomic_entitlements:check_quota(<<"acme">>, concurrent, 800).
%%% {error,{quota_exceeded,concurrent,800,500}}
%%% '''
%%%
%%% SKUs (configurable with the `skus' key: a map from SKU name to figures, merged over these for
%%% the three built-in ones; memory and storage in bytes, GiB = 2^30, TiB = 2^40):
%%%
%%% | SKU | cpu | memory | concurrent | storage | priority |
%%% |---|---|---|---|---|---|
%%% | starter | 2 | 4 GiB | 100 | 10 GiB | 1 |
%%% | pro | 8 | 32 GiB | 1,000 | 100 GiB | 2 |
%%% | enterprise | 64 | 256 GiB | 10,000 | 1 TiB | 3 |
%%%
%%% `priority' is the tenant's default request priority for {@link autonomic_shed} (higher is
%%% more important), so shedding reaches starter tenants first.
%%%
%%% Lifecycle (a table test checks every pair): `pending -> active | terminated';
%%% `active -> paused | expired | terminated'; `paused -> active | expired | terminated';
%%% `expired -> active (renewal) | terminated'; `terminated' is final. Any other transition is
%%% `{error, {invalid_transition, From, To}}' and changes nothing. A tenant may carry an
%%% expiry time: it reads as `expired' from that moment, and the periodic check (every
%%% `entitlement_check_ms') records the transition. Transitions are published as the event
%%% `entitlement_changed' `#{tenant, from, to}'.
%%%
%%% The governor's actions apply per tenant within these quotas: a tenant throttled by `P'
%%% percent ({@link autonomic_bucket:throttle/2}) has its `cpu' and `concurrent' quotas scaled by
%%% `(100 - P) / 100' (memory and storage are capacity already held, so they stay); a paused
%%% tenant gets `{error, paused}' for everything; {@link admit/1} checks, in this order, the
%%% lifecycle, the tenant's token bucket and the node's shedding at the tenant's priority.
-module(autonomic_entitlements).
-behaviour(gen_server).

-export([start_link/0]).
-export([provision/2, provision/3, activate/1, pause/1, resume/1, expire/1, renew/1, renew/2, terminate/1,
         transition/2, change_sku/2, check_quota/3, quota/2, admit/1, admit/2, state/1, info/1, list/0,
         skus/0, sku/1]).
-export([default_skus/0, merge_skus/1, lifecycle/0, lifecycle_transition/2, resources/0, metrics/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-export_type([lifecycle_state/0, resource/0, sku_name/0]).

-define(TAB, autonomic_entitlements).
-define(LOG, #{domain => [autonomic, execute]}).
-define(GiB, 1073741824).
-define(TiB, 1099511627776).

-type lifecycle_state() :: pending | active | paused | expired | terminated.
-type resource() :: cpu | memory | concurrent | storage.
-type sku_name() :: atom().
-type tenant() :: autonomic:tenant().

%%% API

%% @doc Starts the entitlements server (from `autonomic_execute_sup').
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Provisions `Tenant' on `Sku', in `pending'.
-spec provision(tenant(), sku_name()) -> ok | {error, term()}.
provision(Tenant, Sku) ->
    provision(Tenant, Sku, #{}).

%% @doc As {@link provision/2}; `Opts' may hold `expires_at' (milliseconds since the epoch).
-spec provision(tenant(), sku_name(), #{expires_at => integer()}) -> ok | {error, term()}.
provision(Tenant, Sku, Opts) ->
    case {valid_tenant(Tenant), expires(Opts)} of
        {false, _} -> {error, invalid_tenant};
        {_, error} -> {error, {invalid_options, Opts}};
        {true, {ok, Expires}} -> call({provision, Tenant, Sku, Expires})
    end.

%% @doc `pending' or `paused' to `active'.
-spec activate(tenant()) -> ok | {error, term()}.
activate(Tenant) -> transition(Tenant, active).

%% @doc `active' to `paused'.
-spec pause(tenant()) -> ok | {error, term()}.
pause(Tenant) -> transition(Tenant, paused).

%% @doc `paused' to `active'.
-spec resume(tenant()) -> ok | {error, term()}.
resume(Tenant) ->
    case state(Tenant) of
        {ok, paused} -> transition(Tenant, active);
        {ok, Other} -> {error, {invalid_transition, Other, active}};
        Error -> Error
    end.

%% @doc `active' or `paused' to `expired'.
-spec expire(tenant()) -> ok | {error, term()}.
expire(Tenant) -> transition(Tenant, expired).

%% @doc `expired' to `active', with no expiry time.
-spec renew(tenant()) -> ok | {error, term()}.
renew(Tenant) -> renew(Tenant, undefined).

%% @doc `expired' to `active', expiring again at `ExpiresAt' (ms since the epoch, or `undefined').
-spec renew(tenant(), integer() | undefined) -> ok | {error, term()}.
renew(Tenant, ExpiresAt) when ExpiresAt =:= undefined; is_integer(ExpiresAt) ->
    case state(Tenant) of
        {ok, expired} -> call({transition, Tenant, active, {expires, ExpiresAt}});
        {ok, Other} -> {error, {invalid_transition, Other, active}};
        Error -> Error
    end;
renew(_Tenant, ExpiresAt) ->
    {error, {invalid_expiry, ExpiresAt}}.

%% @doc Any state but `terminated' to `terminated' (final).
-spec terminate(tenant()) -> ok | {error, term()}.
terminate(Tenant) -> transition(Tenant, terminated).

%% @doc Moves `Tenant' to `To' if the lifecycle allows it.
-spec transition(tenant(), lifecycle_state()) -> ok | {error, term()}.
transition(Tenant, To) ->
    case {valid_tenant(Tenant), lists:member(To, maps:keys(lifecycle()))} of
        {false, _} -> {error, invalid_tenant};
        {_, false} -> {error, {invalid_state, To}};
        {true, true} -> call({transition, Tenant, To, keep})
    end.

%% @doc Moves `Tenant' to another SKU (not when terminated); returns the SKU it replaced.
-spec change_sku(tenant(), sku_name()) -> {ok, sku_name()} | {error, term()}.
change_sku(Tenant, Sku) ->
    case valid_tenant(Tenant) of
        true -> call({change_sku, Tenant, Sku});
        false -> {error, invalid_tenant}
    end.

%% @doc `ok' when `Tenant' may use `Requested' (in total) of `Resource' now: it is active, not
%% paused by the governor, and `Requested' is within its quota as scaled by its throttle. Reads
%% ETS only.
-spec check_quota(tenant(), resource(), number()) -> ok | {error, term()}.
check_quota(Tenant, Resource, Requested) ->
    case quota(Tenant, Resource) of
        {ok, _} when not (is_number(Requested) andalso Requested >= 0) -> {error, {invalid_amount, Requested}};
        {ok, Limit} when Requested =< Limit -> ok;
        {ok, Limit} -> {error, {quota_exceeded, Resource, Requested, Limit}};
        {error, _} = Error -> Error
    end.

%% @doc `Tenant''s effective quota of `Resource' now (see the module doc).
-spec quota(tenant(), resource()) -> {ok, number()} | {error, term()}.
quota(Tenant, Resource) ->
    case {valid_tenant(Tenant), lists:member(Resource, resources())} of
        {false, _} -> {error, invalid_tenant};
        {_, false} -> {error, {unknown_resource, Resource}};
        {true, true} ->
            case active_row(Tenant) of
                {ok, Limits} ->
                    case autonomic_bucket:controls(Tenant) of
                        {_, true} -> {error, paused};
                        {Throttle, false} -> {ok, scale(Resource, maps:get(Resource, Limits), Throttle)}
                    end;
                {error, _} = Error ->
                    Error
            end
    end.

%% @doc Admits a request of `Tenant' at its SKU's priority; see {@link admit/2}.
-spec admit(tenant()) -> ok | {rejected, term()} | {error, term()}.
admit(Tenant) ->
    case active_row(Tenant) of
        {ok, #{priority := P}} -> admit(Tenant, P);
        {error, {not_active, _} = Why} -> {rejected, Why};
        {error, _} = Error -> Error
    end.

%% @doc Admits a request of `Tenant' with priority `Priority': `{rejected, {not_active, State}}'
%% unless the tenant is active, `{rejected, rate_limited}' when its token bucket is empty (or it
%% is paused), `{rejected, shed}' when the node is shedding it, else `ok'.
-spec admit(tenant(), integer()) -> ok | {rejected, term()} | {error, term()}.
admit(Tenant, Priority) when is_integer(Priority) ->
    case active_row(Tenant) of
        {ok, _} ->
            case autonomic_bucket:take(Tenant) of
                true ->
                    case autonomic_shed:admit(Priority) of
                        true -> ok;
                        false -> {rejected, shed}
                    end;
                false ->
                    {rejected, rate_limited}
            end;
        {error, {not_active, _} = Why} ->
            {rejected, Why};
        {error, _} = Error ->
            Error
    end;
admit(_Tenant, Priority) ->
    {error, {invalid_priority, Priority}}.

%% @doc `Tenant''s lifecycle state (`expired' from its expiry time on).
-spec state(tenant()) -> {ok, lifecycle_state()} | {error, not_found | invalid_tenant}.
state(Tenant) ->
    case valid_tenant(Tenant) andalso ets:lookup(?TAB, Tenant) of
        false -> {error, invalid_tenant};
        [{_, _, State, _, Expires}] -> {ok, effective_state(State, Expires)};
        [] -> {error, not_found}
    end.

%% @doc `#{sku, state, since, expires_at, limits}' of `Tenant' (`limits': the SKU's figures).
-spec info(tenant()) -> {ok, map()} | {error, not_found | invalid_tenant}.
info(Tenant) ->
    case valid_tenant(Tenant) andalso ets:lookup(?TAB, Tenant) of
        false -> {error, invalid_tenant};
        [{_, Sku, State, Since, Expires}] ->
            {ok, #{sku => Sku, state => effective_state(State, Expires), since => Since, expires_at => Expires,
                   limits => sku_limits(Sku)}};
        [] -> {error, not_found}
    end.

%% @doc Every tenant with its SKU and state.
-spec list() -> [{tenant(), sku_name(), lifecycle_state()}].
list() ->
    lists:sort([{T, Sku, effective_state(S, E)} || {T, Sku, S, _, E} <- ets:tab2list(?TAB), is_binary(T)]).

%% @doc The SKUs in force.
-spec skus() -> #{sku_name() => map()}.
skus() ->
    maps:from_list([{N, L} || {{sku, N}, L} <- ets:tab2list(?TAB)]).

%% @doc One SKU's figures.
-spec sku(sku_name()) -> {ok, map()} | {error, {unknown_sku, term()}}.
sku(Name) ->
    case ets:lookup(?TAB, {sku, Name}) of
        [{_, L}] -> {ok, L};
        [] -> {error, {unknown_sku, Name}}
    end.

%% @doc The built-in SKUs.
-spec default_skus() -> #{sku_name() => map()}.
default_skus() ->
    #{
        starter => #{cpu => 2, memory => 4 * ?GiB, concurrent => 100, storage => 10 * ?GiB, priority => 1},
        pro => #{cpu => 8, memory => 32 * ?GiB, concurrent => 1000, storage => 100 * ?GiB, priority => 2},
        enterprise => #{cpu => 64, memory => 256 * ?GiB, concurrent => 10000, storage => ?TiB, priority => 3}
    }.

%% @doc The SKUs resulting from a `skus' configuration value, or the reason it is invalid.
-spec merge_skus(term()) -> {ok, #{sku_name() => map()}} | {error, term()}.
merge_skus(Config) when is_map(Config) ->
    Defaults = default_skus(),
    Merged = maps:fold(
        fun(Name, Figures, Acc) when is_atom(Name), is_map(Figures) ->
                Acc#{Name => maps:merge(maps:get(Name, Defaults, #{}), Figures)};
           (Name, Figures, Acc) ->
                Acc#{{bad, Name} => Figures}
        end,
        Defaults, Config),
    case [{N, F} || {N, F} <- maps:to_list(Merged), not valid_sku(N, F)] of
        [] -> {ok, Merged};
        [{{bad, N}, F} | _] -> {error, {invalid_sku, N, F}};
        [{N, F} | _] -> {error, {invalid_sku, N, F}}
    end;
merge_skus(Other) ->
    {error, {invalid_skus, Other}}.

%% @doc The lifecycle: each state and the states it may move to.
-spec lifecycle() -> #{lifecycle_state() => [lifecycle_state()]}.
lifecycle() ->
    #{
        pending => [active, terminated],
        active => [paused, expired, terminated],
        paused => [active, expired, terminated],
        expired => [active, terminated],
        terminated => []
    }.

%% @doc Whether the lifecycle allows `From' to `To'.
-spec lifecycle_transition(lifecycle_state(), lifecycle_state()) -> ok | {error, {invalid_transition, term(), term()}}.
lifecycle_transition(From, To) ->
    case lists:member(To, maps:get(From, lifecycle(), [])) of
        true -> ok;
        false -> {error, {invalid_transition, From, To}}
    end.

%% @doc The resources with quotas.
-spec resources() -> [resource()].
resources() -> [cpu, memory, concurrent, storage].

%% @doc Scrape-time metrics: tenants per lifecycle state (registered as a collector).
-spec metrics() -> [{atom(), gauge, iodata(), [{map(), number()}]}].
metrics() ->
    case ets:whereis(?TAB) of
        undefined ->
            [];
        _ ->
            Counts = lists:foldl(fun({_, _, S}, Acc) -> maps:update_with(S, fun(N) -> N + 1 end, 1, Acc) end,
                                 maps:from_list([{S, 0} || S <- maps:keys(lifecycle())]), list()),
            [{autonomic_tenants, gauge, "Tenants per entitlement lifecycle state.",
              [{#{state => S}, N} || {S, N} <- lists:sort(maps:to_list(Counts))]}]
    end.

%%% gen_server

%% @private
-spec init([]) -> {ok, map()}.
init([]) ->
    %% Tenants: {Tenant, Sku, State, SinceMs, ExpiresAtMs | undefined}; SKUs: {{sku, Name}, Figures}.
    _ = ets:new(?TAB, [named_table, protected, set, {read_concurrency, true}]),
    {ok, Skus} = merge_skus(autonomic_execute_config:get(skus)),
    maps:foreach(fun(N, F) -> true = ets:insert(?TAB, {{sku, N}, F}) end, Skus),
    Interval = autonomic_execute_config:get(entitlement_check_ms),
    _ = erlang:send_after(Interval, self(), check_expiry),
    {ok, #{interval => Interval}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call({provision, Tenant, Sku, Expires}, _From, S) ->
    Reply = case {ets:lookup(?TAB, Tenant), sku(Sku)} of
        {[{_, _, State, _, E}], _} ->
            {error, {already_provisioned, effective_state(State, E)}};
        {[], {error, _} = Error} ->
            Error;
        {[], {ok, _}} ->
            true = ets:insert(?TAB, {Tenant, Sku, pending, now_ms(), Expires}),
            report(Tenant, none, pending),
            ok
    end,
    {reply, Reply, S};
handle_call({transition, Tenant, To, ExpiresChange}, _From, S) ->
    Reply = case ets:lookup(?TAB, Tenant) of
        [{_, Sku, State0, _, Expires}] ->
            From = effective_state(State0, Expires),
            case lifecycle_transition(From, To) of
                ok ->
                    Expires1 = case ExpiresChange of
                        keep when To =:= active, From =:= expired -> undefined;
                        keep -> Expires;
                        {expires, E} -> E
                    end,
                    true = ets:insert(?TAB, {Tenant, Sku, To, now_ms(), Expires1}),
                    report(Tenant, From, To),
                    ok;
                {error, _} = Error ->
                    Error
            end;
        [] ->
            {error, not_found}
    end,
    {reply, Reply, S};
handle_call({change_sku, Tenant, Sku}, _From, S) ->
    Reply = case {ets:lookup(?TAB, Tenant), sku(Sku)} of
        {[], _} -> {error, not_found};
        {[{_, _, terminated, _, _}], _} -> {error, {invalid_transition, terminated, terminated}};
        {_, {error, _} = Error} -> Error;
        {[{_, Old, State, Since, Expires}], {ok, _}} ->
            true = ets:insert(?TAB, {Tenant, Sku, State, Since, Expires}),
            logger:notice("tenant ~ts: SKU ~p -> ~p", [Tenant, Old, Sku], ?LOG),
            {ok, Old}
    end,
    {reply, Reply, S};
handle_call(_Req, _From, S) ->
    {reply, {error, unknown_call}, S}.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) ->
    {noreply, S}.

%% @private
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(check_expiry, #{interval := I} = S) ->
    _ = erlang:send_after(I, self(), check_expiry),
    Now = now_ms(),
    Due = [R || {T, _, St, _, E} = R <- ets:tab2list(?TAB), is_binary(T), is_integer(E), E =< Now,
                (St =:= active orelse St =:= paused)],
    lists:foreach(fun({T, Sku, St, _, E}) ->
                      true = ets:insert(?TAB, {T, Sku, expired, E, E}),
                      report(T, St, expired)
                  end, Due),
    {noreply, S};
handle_info(_Msg, S) ->
    {noreply, S}.

%%% Internal

%% The SKU's figures when the tenant is active now.
active_row(Tenant) ->
    case valid_tenant(Tenant) andalso ets:lookup(?TAB, Tenant) of
        false -> {error, invalid_tenant};
        [] -> {error, not_found};
        [{_, Sku, State, _, Expires}] ->
            case effective_state(State, Expires) of
                active -> {ok, sku_limits(Sku)};
                Other -> {error, {not_active, Other}}
            end
    end.

effective_state(State, Expires) when (State =:= active orelse State =:= paused), is_integer(Expires) ->
    case now_ms() >= Expires of
        true -> expired;
        false -> State
    end;
effective_state(State, _) ->
    State.

sku_limits(Sku) ->
    case ets:lookup(?TAB, {sku, Sku}) of
        [{_, L}] -> L;
        %% An SKU removed from the configuration since: no quota.
        [] -> #{cpu => 0, memory => 0, concurrent => 0, storage => 0, priority => 0}
    end.

scale(Resource, Limit, Throttle) when Resource =:= cpu; Resource =:= concurrent ->
    case is_integer(Limit) of
        true -> Limit * (100 - Throttle) div 100;
        false -> Limit * (100 - Throttle) / 100
    end;
scale(_Resource, Limit, _Throttle) ->
    Limit.

valid_sku({bad, _}, _) ->
    false;
valid_sku(_Name, F) ->
    Keys = [cpu, memory, concurrent, storage, priority],
    lists:sort(maps:keys(F)) =:= lists:sort(Keys)
        andalso lists:all(fun(K) -> V = maps:get(K, F), is_number(V) andalso V >= 0 end, resources())
        andalso is_integer(maps:get(priority, F)).

expires(Opts) when is_map(Opts) ->
    case maps:to_list(Opts) of
        [] -> {ok, undefined};
        [{expires_at, E}] when is_integer(E) -> {ok, E};
        _ -> error
    end;
expires(_) ->
    error.

report(Tenant, From, To) ->
    _ = autonomic_events:publish(entitlement_changed, #{tenant => Tenant, from => From, to => To}),
    ok = autonomic_metrics:inc(autonomic_entitlement_transitions_total, #{to => To}),
    logger:notice("tenant ~ts: ~p -> ~p", [Tenant, From, To], ?LOG).

valid_tenant(T) -> is_binary(T) andalso byte_size(T) > 0 andalso byte_size(T) =< 256.

now_ms() -> erlang:system_time(millisecond).

call(Request) ->
    gen_server:call(?MODULE, Request).
