%%% @doc Signal ingest: raw events `#{tenant, metric, value, timestamp}' from outside (the
%%% seed's Monitor phase) are validated and normalized ({@link mape_k_signal}), deduplicated and
%%% forwarded to the tenant's governor with `autonomic:transition(Tenant, {signal, Metric,
%%% Normalized})'.
%%%
%%% Deduplication: a signal's id is SHA-256 over tenant, metric, value and its 5-second window
%%% (`dedup_window_ms'); an id seen within the last window on this node is a duplicate and is
%%% dropped. The ids live in a public ETS table that this process owns and sweeps; {@link
%%% ingest/1} runs in the caller's process (no hop through a server, so ingest scales with the
%%% callers), and claiming an id is one atomic `ets:insert_new/2'.
%%%
%%% Rejected events are counted by reason (`autonomic_ingest_rejected_total{reason}') and never
%%% reach a governor.
-module(mape_k_ingest).
-behaviour(gen_server).

-export([start_link/0, ingest/1, counters/0, reasons/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(TAB, mape_k_ingest_ids).
-define(CONF, {?MODULE, config}).

%%% API

%% @doc Starts the owner of the id table (from the monitor's supervisor).
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Ingests one raw event. `{ok, #{id, tenant, metric, normalized, state, action}}' when the
%% governor took it; `{duplicate, Id}' when the same signal was ingested within the window;
%% `{error, Reason}' (see {@link mape_k_signal:validate/3}) when it is invalid, and
%% `{error, monitor_not_running}' when the monitor application is not started.
-spec ingest(term()) -> {ok, map()} | {duplicate, binary()} | {error, term()}.
ingest(Raw) ->
    case persistent_term:get(?CONF, undefined) of
        undefined -> {error, monitor_not_running};
        Conf -> ingest(Raw, Conf)
    end.

ingest(Raw, #{metrics := Metrics, window := Window, max_future := MaxFuture}) ->
    case mape_k_signal:validate(Raw, Metrics, #{now_ms => erlang:system_time(millisecond), max_future_ms => MaxFuture}) of
        {error, Reason} ->
            reject(Reason);
        {ok, #{tenant := T, metric := M, normalized := N} = Signal} ->
            Id = mape_k_signal:id(Signal, Window),
            case claim(Id, Window) of
                duplicate ->
                    ok = autonomic_metrics:inc(autonomic_ingest_signals_total, #{result => duplicate}),
                    {duplicate, Id};
                new ->
                    case autonomic:transition(T, {signal, M, N}) of
                        {ok, State, Action} ->
                            ok = autonomic_metrics:inc(autonomic_ingest_signals_total, #{result => accepted}),
                            {ok, #{id => Id, tenant => T, metric => M, normalized => N, state => State, action => Action}};
                        {error, Why} ->
                            %% Validation should make this impossible; count it rather than hide it.
                            _ = ets:delete(?TAB, Id),
                            reject({governor_error, Why})
                    end
            end
    end.

%% @doc Accepted and duplicate counts, and rejections by reason, on this node.
-spec counters() -> #{accepted := number(), duplicates := number(), rejected := #{atom() => number()}}.
counters() ->
    #{
        accepted => autonomic_metrics:value(autonomic_ingest_signals_total, #{result => accepted}),
        duplicates => autonomic_metrics:value(autonomic_ingest_signals_total, #{result => duplicate}),
        rejected => maps:from_list([{R, autonomic_metrics:value(autonomic_ingest_rejected_total, #{reason => R})}
                                    || R <- reasons()])
    }.

%% @doc Every rejection reason label.
-spec reasons() -> [atom()].
reasons() ->
    [not_a_map, missing_field, invalid_tenant, unknown_metric, invalid_value, value_out_of_bounds,
     invalid_timestamp, timestamp_in_future, governor_error].

%%% gen_server

%% @private
-spec init([]) -> {ok, pos_integer()} | {stop, term()}.
init([]) ->
    case mape_k_signal:metrics(mape_k_config:get(ingest_metrics)) of
        {ok, Metrics} ->
            Window = mape_k_config:get(dedup_window_ms),
            _ = ets:new(?TAB, [named_table, public, set, {write_concurrency, true}, {read_concurrency, true}]),
            persistent_term:put(?CONF, #{metrics => Metrics, window => Window,
                                         max_future => mape_k_config:get(max_future_ms)}),
            _ = erlang:send_after(Window, self(), sweep),
            {ok, Window};
        {error, Reason} ->
            {stop, {invalid_config, ingest_metrics, Reason}}
    end.

%% @private
-spec handle_call(term(), gen_server:from(), pos_integer()) -> {reply, {error, unknown_call}, pos_integer()}.
handle_call(_Req, _From, Window) ->
    {reply, {error, unknown_call}, Window}.

%% @private
-spec handle_cast(term(), pos_integer()) -> {noreply, pos_integer()}.
handle_cast(_Msg, Window) ->
    {noreply, Window}.

%% @private
-spec handle_info(term(), pos_integer()) -> {noreply, pos_integer()}.
handle_info(sweep, Window) ->
    _ = erlang:send_after(Window, self(), sweep),
    Now = now_ms(),
    _ = ets:select_delete(?TAB, [{{'_', '$1'}, [{'=<', '$1', Now}], [true]}]),
    {noreply, Window};
handle_info(_Other, Window) ->
    {noreply, Window}.

%% @private
-spec terminate(term(), pos_integer()) -> ok.
terminate(_Reason, _Window) ->
    _ = persistent_term:erase(?CONF),
    ok.

%%% Internals

%% Claims an id for one window; an expired id the sweeper has not removed yet is taken over with
%% a compare-and-swap, so two concurrent callers never both win.
claim(Id, Window) ->
    Now = now_ms(),
    case ets:insert_new(?TAB, {Id, Now + Window}) of
        true ->
            new;
        false ->
            case ets:lookup(?TAB, Id) of
                [{Id, Expires}] when Expires =< Now ->
                    case ets:select_replace(?TAB, [{{Id, Expires}, [], [{const, {Id, Now + Window}}]}]) of
                        1 -> new;
                        0 -> duplicate
                    end;
                [_] ->
                    duplicate;
                [] ->
                    claim(Id, Window)
            end
    end.

reject(Reason) ->
    ok = autonomic_metrics:inc(autonomic_ingest_rejected_total, #{reason => mape_k_signal:reason_label(Reason)}),
    {error, Reason}.

now_ms() ->
    erlang:monotonic_time(millisecond).
