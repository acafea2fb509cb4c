%%% @doc The monitor's configuration: application `autonomic_monitor' environment keys, their
%%% defaults and their validation. Every key is documented in README.md (Monitor section).
-module(mape_k_config).

-export([get/1, defaults/0, validate/0]).

-compile({no_auto_import, [get/1]}).

-type key() :: atom().

%% @doc Every key with its default.
-spec defaults() -> #{key() => term()}.
defaults() ->
    #{
        %% Failure detection
        heartbeat_interval_ms => 200,
        phi_threshold => 8,
        phi_window => 1000,
        phi_min_std_ms => 100,
        phi_check_interval_ms => 50,
        %% Connectivity matrix gossip
        gossip_interval_ms => 1000,
        row_ttl_ms => 3000,
        forget_down_after_ms => 600000,
        %% Resources
        sample_interval_ms => 1000,
        thresholds => #{memory => 90, disk => 90, cpu => 90, processes => 90, ports => 90, atoms => 90},
        hysteresis => 5,
        memory_limit => auto,
        cgroup_root => "/sys/fs/cgroup",
        top_k => 5,
        %% Trends
        trend_window => 60,
        trend_min_samples => 10,
        trend_min_r2 => 0.8,
        trend_horizon_s => 3600,
        mailbox_limit => 100000,
        %% Signal ingest
        ingest_metrics => #{},
        dedup_window_ms => 5000,
        max_future_ms => 3600000,
        %% Prometheus endpoint
        metrics_port => 9568,
        metrics_ip => {127, 0, 0, 1}
    }.

%% @doc The value of `Key' in force.
-spec get(key()) -> term().
get(Key) ->
    case application:get_env(autonomic_monitor, Key) of
        {ok, V} -> V;
        undefined -> maps:get(Key, defaults())
    end.

%% @doc Checks every key; `{error, {invalid_config, Key, Value}}' names the first bad one.
-spec validate() -> ok | {error, {invalid_config, key(), term()}}.
validate() ->
    Bad = [{K, V} || K <- lists:sort(maps:keys(defaults())), V <- [get(K)], not valid(K, V)],
    case Bad of
        [] -> ok;
        [{K, V} | _] -> {error, {invalid_config, K, V}}
    end.

valid(K, V) when K =:= heartbeat_interval_ms; K =:= phi_check_interval_ms; K =:= gossip_interval_ms;
                 K =:= row_ttl_ms; K =:= dedup_window_ms; K =:= forget_down_after_ms ->
    is_integer(V) andalso V > 0;
valid(sample_interval_ms, V) -> is_integer(V) andalso V > 0 andalso V < 60000;
valid(phi_threshold, V) -> is_number(V) andalso V > 0 andalso V < mape_k_phi:max_phi();
valid(phi_window, V) -> is_integer(V) andalso V >= 2;
valid(phi_min_std_ms, V) -> is_number(V) andalso V > 0;
valid(thresholds, V) ->
    is_map(V) andalso maps:size(maps:without([memory, disk, cpu, processes, ports, atoms], V)) =:= 0
        andalso lists:all(fun(P) -> is_number(P) andalso P > 0 andalso P =< 100 end, maps:values(V));
valid(hysteresis, V) -> is_number(V) andalso V >= 0 andalso V < 100;
valid(memory_limit, V) -> V =:= auto orelse (is_integer(V) andalso V > 0);
valid(cgroup_root, V) -> is_list(V) orelse is_binary(V);
valid(top_k, V) -> is_integer(V) andalso V >= 0;
valid(trend_window, V) -> is_integer(V) andalso V >= 3;
valid(trend_min_samples, V) -> is_integer(V) andalso V >= 3;
valid(trend_min_r2, V) -> is_number(V) andalso V >= 0 andalso V =< 1;
valid(trend_horizon_s, V) -> is_number(V) andalso V > 0;
valid(mailbox_limit, V) -> is_integer(V) andalso V > 0;
valid(ingest_metrics, V) -> element(1, mape_k_signal:metrics(V)) =:= ok;
valid(max_future_ms, V) -> is_integer(V) andalso V >= 0;
valid(metrics_port, V) -> V =:= none orelse (is_integer(V) andalso V >= 0 andalso V =< 65535);
valid(metrics_ip, V) -> is_tuple(V) andalso (tuple_size(V) =:= 4 orelse tuple_size(V) =:= 8);
valid(_, _) -> false.
