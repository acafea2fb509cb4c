%%% @doc Resource sampling, thresholds and trends on this node, every `sample_interval_ms' (1 s).
%%%
%%% A sample holds: memory by type (`erlang:memory/0'), the memory limit in force and where it
%%% comes from (`memory_limit' when configured, else the cgroup's limit when there is one, else
%%% the host's total from `memsup'), run queue lengths, scheduler utilization (from
%%% `scheduler_wall_time' deltas), process, port and atom counts against their limits, the
%%% `top_k' largest mailboxes and the `top_k' largest processes, disk use per mount
%%% (`disksup') and host CPU use (`cpu_sup').
%%%
%%% Thresholds (percent, default 90 for memory, disk, cpu, processes, ports, atoms) raise
%%% `resource_exhausted' `#{resource, value, threshold}' (disks also name the `mount') when
%%% reached, and `resource_recovered' once the value is `hysteresis' (5) points below the
%%% threshold; each is also an OTP alarm `{autonomic_resource_exhausted, Resource}' set and
%%% cleared through `alarm_handler'.
%%%
%%% Trends ({@link mape_k_trend}) over the last `trend_window' samples: node memory (against the
%%% memory limit), the memory of each of the largest processes (against the memory limit: the
%%% node dies when one process eats it) and the length of each of the longest mailboxes
%%% (against `mailbox_limit'). Steady growth that will reach the limit within
%%% `trend_horizon_s' raises `resource_trend' `#{resource, slope_per_s, r2, value, limit,
%%% projected_exhaustion_s}' (plus `pid' and `name' for a process) once, until the growth stops.
%%%
%%% Scanning every process for the largest mailboxes costs O(processes) per sample; on a node
%%% with a million processes, raise `sample_interval_ms' or set `top_k' to 0.
-module(mape_k_resources).
-behaviour(gen_server).

-export([start_link/0, latest/0, sample_now/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(LOG, #{domain => [autonomic, monitor]}).
-define(ALARM, autonomic_resource_exhausted).

-type resource() :: memory | cpu | processes | ports | atoms | {disk, string()}.
-type trend_key() :: memory | {process_memory, pid()} | {mailbox, pid()}.

-record(st, {
    interval :: pos_integer(),
    thresholds :: #{atom() => number()},
    hysteresis :: number(),
    top_k :: non_neg_integer(),
    trend_opts :: map(),
    trend_window :: pos_integer(),
    mailbox_limit :: pos_integer(),
    exhausted = #{} :: #{resource() => true},
    trends = #{} :: #{trend_key() => mape_k_trend:window()},
    trending = #{} :: #{trend_key() => true},
    wall :: term(),
    %% The memory limit and when it was read: reading the cgroup files costs far more than the
    %% rest of a sample, and limits change rarely.
    limit = undefined :: {integer(), {pos_integer() | unlimited, term()}} | undefined,
    latest = #{} :: map()
}).

-define(LIMIT_REFRESH_MS, 30000).

%%% API

%% @doc Starts the sampler (from the monitor's supervisor).
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc The latest sample (an empty map before the first).
-spec latest() -> map().
latest() ->
    gen_server:call(?MODULE, latest, 10000).

%% @doc Takes a sample now (besides the periodic ones) and returns it.
-spec sample_now() -> map().
sample_now() ->
    gen_server:call(?MODULE, sample_now, 10000).

%%% gen_server

%% @private
-spec init([]) -> {ok, #st{}}.
init([]) ->
    process_flag(trap_exit, true),
    _ = erlang:system_flag(scheduler_wall_time, true),
    Interval = mape_k_config:get(sample_interval_ms),
    St = #st{
        interval = Interval,
        thresholds = maps:merge(maps:get(thresholds, mape_k_config:defaults()), mape_k_config:get(thresholds)),
        hysteresis = mape_k_config:get(hysteresis),
        top_k = mape_k_config:get(top_k),
        trend_window = mape_k_config:get(trend_window),
        trend_opts = #{horizon_s => mape_k_config:get(trend_horizon_s), min_r2 => mape_k_config:get(trend_min_r2),
                       min_samples => mape_k_config:get(trend_min_samples)},
        mailbox_limit = mape_k_config:get(mailbox_limit),
        wall = lists:sort(erlang:statistics(scheduler_wall_time))
    },
    _ = erlang:send_after(Interval, self(), sample),
    {ok, St}.

%% @private
-spec handle_call(term(), gen_server:from(), #st{}) -> {reply, term(), #st{}}.
handle_call(latest, _From, St) ->
    {reply, St#st.latest, St};
handle_call(sample_now, _From, St) ->
    St1 = sample(St),
    {reply, St1#st.latest, St1};
handle_call(_Req, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @private
-spec handle_cast(term(), #st{}) -> {noreply, #st{}}.
handle_cast(_Msg, St) ->
    {noreply, St}.

%% @private
-spec handle_info(term(), #st{}) -> {noreply, #st{}}.
handle_info(sample, #st{interval = I} = St) ->
    _ = erlang:send_after(I, self(), sample),
    {noreply, sample(St)};
handle_info(_Other, St) ->
    {noreply, St}.

%% @private
%% Alarms this process set must not outlive it: a restarted sampler starts from "nothing raised".
-spec terminate(term(), #st{}) -> ok.
terminate(_Reason, #st{exhausted = Ex}) ->
    _ = [catch alarm_handler:clear_alarm({?ALARM, R}) || R <- maps:keys(Ex)],
    ok.

%%% Sampling

sample(St) ->
    Now = erlang:monotonic_time(millisecond),
    Mem = maps:from_list(erlang:memory()),
    {{Limit, LimitSource}, LimitCache} = cached_memory_limit(Now, St#st.limit),
    {Util, Wall} = scheduler_utilization(St#st.wall),
    {Mailboxes, Biggest} = top_processes(St#st.top_k),
    Disks = disks(),
    Cpu = cpu(),
    Counts = #{
        processes => {erlang:system_info(process_count), erlang:system_info(process_limit)},
        ports => {erlang:system_info(port_count), erlang:system_info(port_limit)},
        atoms => {erlang:system_info(atom_count), erlang:system_info(atom_limit)}
    },
    Usage = maps:merge(
        #{memory => pct(maps:get(total, Mem), Limit)},
        maps:map(fun(_, {N, Max}) -> pct(N, Max) end, Counts)),
    Usage1 = case Cpu of undefined -> Usage; _ -> Usage#{cpu => Cpu} end,
    Usage2 = maps:merge(Usage1, maps:from_list([{{disk, M}, P} || {M, P} <- Disks])),
    Sample = #{
        at => erlang:system_time(millisecond),
        memory => Mem,
        memory_limit => Limit,
        memory_limit_source => LimitSource,
        run_queue => erlang:statistics(total_run_queue_lengths_all),
        run_queues => erlang:statistics(run_queue_lengths_all),
        scheduler_utilization => Util,
        counts => maps:map(fun(_, {N, Max}) -> #{count => N, limit => Max} end, Counts),
        top_mailboxes => Mailboxes,
        top_memory => Biggest,
        disks => maps:from_list(Disks),
        cpu_percent => Cpu,
        usage_percent => Usage2
    },
    ok = export_metrics(Sample),
    St1 = thresholds(Usage2, St#st{wall = Wall, limit = LimitCache}),
    St2 = trends(Now, Sample, St1),
    St2#st{latest = Sample#{exhausted => maps:keys(St2#st.exhausted), trending => maps:keys(St2#st.trending)}}.

pct(_N, unlimited) -> 0.0;
pct(N, Max) when Max > 0 -> N * 100 / Max.

%% The memory limit and where it came from, re-read every 30 s.
cached_memory_limit(Now, {At, Cached} = Cache) when Now - At < ?LIMIT_REFRESH_MS ->
    {Cached, Cache};
cached_memory_limit(Now, _) ->
    Limit = memory_limit(),
    {Limit, {Now, Limit}}.

memory_limit() ->
    case mape_k_config:get(memory_limit) of
        Bytes when is_integer(Bytes) -> {Bytes, configured};
        auto ->
            case mape_k_cgroup:memory() of
                #{limit := L, version := V} when is_integer(L) -> {L, {cgroup, V}};
                _ -> host_memory()
            end
    end.

host_memory() ->
    try memsup:get_system_memory_data() of
        Data ->
            case proplists:get_value(system_total_memory, Data, proplists:get_value(total_memory, Data)) of
                N when is_integer(N), N > 0 -> {N, host};
                _ -> {unlimited, none}
            end
    catch
        _:_ -> {unlimited, none}
    end.

scheduler_utilization(Prev) ->
    case erlang:statistics(scheduler_wall_time) of
        undefined ->
            {undefined, Prev};
        Cur0 ->
            Cur = lists:sort(Cur0),
            Before = maps:from_list([{I, {A0, T0}} || {I, A0, T0} <- Prev]),
            {A, T} = lists:foldl(
                fun({I, A1, T1}, {AA, TT}) ->
                        case Before of
                            #{I := {A0, T0}} -> {AA + (A1 - A0), TT + (T1 - T0)};
                            #{} -> {AA, TT}
                        end
                end,
                {0, 0},
                Cur),
            {case T > 0 of true -> A / T; false -> 0.0 end, Cur}
    end.

%% The K longest mailboxes and the K largest processes (pid, registered name, value).
top_processes(0) ->
    {[], []};
top_processes(K) ->
    Infos = lists:foldl(
        fun(P, Acc) ->
            case erlang:process_info(P, [message_queue_len, memory, registered_name]) of
                [{message_queue_len, Q}, {memory, M}, {registered_name, N}] -> [{P, Q, M, N} | Acc];
                undefined -> Acc
            end
        end,
        [], erlang:processes()),
    Mailboxes = lists:sublist(lists:reverse(lists:keysort(2, [I || {_, Q, _, _} = I <- Infos, Q > 0])), K),
    Biggest = lists:sublist(lists:reverse(lists:keysort(3, Infos)), K),
    {[#{pid => P, name => name(N), len => Q} || {P, Q, _, N} <- Mailboxes],
     [#{pid => P, name => name(N), bytes => M} || {P, _, M, N} <- Biggest]}.

name([]) -> undefined;
name(N) -> N.

disks() ->
    try disksup:get_disk_data() of
        Data -> [{Mount, Pct} || {Mount, Size, Pct} <- Data, Size > 0]
    catch
        _:_ -> []
    end.

cpu() ->
    try cpu_sup:util() of
        U when is_number(U) -> U;
        _ -> undefined
    catch
        _:_ -> undefined
    end.

%%% Thresholds with hysteresis, events and alarms

thresholds(Usage, #st{thresholds = Th, hysteresis = H, exhausted = Ex} = St) ->
    Ex1 = maps:fold(
        fun(Resource, Value, Acc) ->
            case threshold(Resource, Th) of
                undefined ->
                    Acc;
                Limit ->
                    Raised = maps:is_key(Resource, Acc),
                    if
                        not Raised andalso Value >= Limit ->
                            raise(Resource, Value, Limit),
                            Acc#{Resource => true};
                        Raised andalso Value < Limit - H ->
                            clear(Resource, Value, Limit),
                            maps:remove(Resource, Acc);
                        true ->
                            Acc
                    end
            end
        end,
        Ex, Usage),
    St#st{exhausted = Ex1}.

threshold({disk, _}, Th) -> maps:get(disk, Th, undefined);
threshold(R, Th) -> maps:get(R, Th, undefined).

detail({disk, Mount}, Value, Limit) -> #{resource => disk, mount => Mount, value => Value, threshold => Limit};
detail(R, Value, Limit) -> #{resource => R, value => Value, threshold => Limit}.

%% The alarm and the gauge change before the event goes out, so a subscriber reacting to the
%% event finds them already set (or cleared).
raise(Resource, Value, Limit) ->
    Detail = detail(Resource, Value, Limit),
    ok = alarm_handler:set_alarm({{?ALARM, Resource}, Detail}),
    ok = autonomic_metrics:set(autonomic_resource_exhausted, labels(Resource), 1),
    _ = autonomic_events:publish(resource_exhausted, Detail),
    logger:warning("resource exhausted: ~p at ~.1f% (threshold ~p%)", [Resource, float(Value), Limit], ?LOG).

clear(Resource, Value, Limit) ->
    ok = alarm_handler:clear_alarm({?ALARM, Resource}),
    ok = autonomic_metrics:set(autonomic_resource_exhausted, labels(Resource), 0),
    _ = autonomic_events:publish(resource_recovered, detail(Resource, Value, Limit)),
    logger:notice("resource recovered: ~p at ~.1f%", [Resource, float(Value)], ?LOG).

labels({disk, Mount}) -> #{resource => disk, mount => Mount};
labels(R) -> #{resource => R, mount => ""}.

%%% Trends

trends(Now, #{memory := #{total := Total}, memory_limit := Limit, top_mailboxes := Mb, top_memory := Big},
       #st{mailbox_limit = MbLimit} = St) ->
    MemLimit = case Limit of unlimited -> undefined; _ -> Limit end,
    Series = [{memory, Total, MemLimit, #{}}]
        ++ [{{process_memory, P}, B, MemLimit, #{pid => P, name => N}} || #{pid := P, bytes := B, name := N} <- Big]
        ++ [{{mailbox, P}, L, MbLimit, #{pid => P, name => N}} || #{pid := P, len := L, name := N} <- Mb],
    %% Windows are kept only for the series sampled now: a process that left the top K (or died)
    %% takes its history with it, so memory stays bounded.
    Keys = [K || {K, _, _, _} <- Series],
    Trends0 = maps:with(Keys, St#st.trends),
    {Trends, Trending} = lists:foldl(
        fun({Key, Value, L, Extra}, {Ts, Tr}) ->
            W = mape_k_trend:add(maps:get(Key, Ts, mape_k_trend:new(St#st.trend_window)), Now, Value),
            Tr1 = case L of
                undefined -> maps:remove(Key, Tr);
                _ -> assess(Key, W, L, Extra, Tr, St#st.trend_opts)
            end,
            {Ts#{Key => W}, Tr1}
        end,
        {Trends0, maps:with(Keys, St#st.trending)},
        Series),
    St#st{trends = Trends, trending = Trending}.

assess(Key, W, Limit, Extra, Trending, Opts) ->
    case {mape_k_trend:assess(W, Opts#{limit => Limit}), maps:is_key(Key, Trending)} of
        {{trend, T}, false} ->
            Detail = maps:merge(Extra, T#{resource => trend_resource(Key)}),
            _ = autonomic_events:publish(resource_trend, Detail),
            logger:warning("resource trend: ~p grows ~.3g/s, exhaustion projected in ~.0f s",
                           [Key, maps:get(slope_per_s, T), maps:get(projected_exhaustion_s, T)], ?LOG),
            Trending#{Key => true};
        {{trend, _}, true} ->
            Trending;
        {no_trend, _} ->
            maps:remove(Key, Trending)
    end.

trend_resource(memory) -> memory;
trend_resource({process_memory, _}) -> process_memory;
trend_resource({mailbox, _}) -> mailbox.

%%% Metrics

export_metrics(#{memory := Mem, memory_limit := Limit, run_queue := RQ, scheduler_utilization := Util,
                 counts := Counts, top_mailboxes := Mb, disks := Disks, cpu_percent := Cpu,
                 usage_percent := Usage}) ->
    _ = [ok = autonomic_metrics:set(autonomic_memory_bytes, #{type => T}, maps:get(T, Mem))
         || T <- [total, processes, binary, ets, atom, code, system], is_map_key(T, Mem)],
    _ = is_integer(Limit) andalso autonomic_metrics:set(autonomic_memory_limit_bytes, #{}, Limit),
    ok = autonomic_metrics:set(autonomic_run_queue_length, #{}, RQ),
    _ = is_number(Util) andalso autonomic_metrics:set(autonomic_scheduler_utilization, #{}, Util),
    _ = [begin
             ok = autonomic_metrics:set(autonomic_system_in_use, #{kind => K}, N),
             ok = autonomic_metrics:set(autonomic_system_limit, #{kind => K}, Max)
         end || {K, #{count := N, limit := Max}} <- maps:to_list(Counts)],
    ok = autonomic_metrics:set(autonomic_mailbox_max_length, #{},
                               case Mb of [#{len := L} | _] -> L; [] -> 0 end),
    _ = [ok = autonomic_metrics:set(autonomic_disk_used_percent, #{mount => M}, P) || {M, P} <- maps:to_list(Disks)],
    _ = is_number(Cpu) andalso autonomic_metrics:set(autonomic_cpu_used_percent, #{}, Cpu),
    _ = [ok = autonomic_metrics:set(autonomic_resource_used_percent, labels(R), V) || {R, V} <- maps:to_list(Usage)],
    ok.
