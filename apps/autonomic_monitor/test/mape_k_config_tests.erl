%%% @doc EUnit tests of the monitor's configuration checks (`mape_k_config').
-module(mape_k_config_tests).

-include_lib("eunit/include/eunit.hrl").

with_env(Key, Value, Fun) ->
    Old = application:get_env(autonomic_monitor, Key),
    ok = application:set_env(autonomic_monitor, Key, Value),
    try Fun()
    after
        case Old of
            {ok, V} -> application:set_env(autonomic_monitor, Key, V);
            undefined -> application:unset_env(autonomic_monitor, Key)
        end
    end.

defaults_are_valid_test() ->
    ?assertEqual(ok, mape_k_config:validate()),
    ?assertEqual(200, mape_k_config:get(heartbeat_interval_ms)).

bad_values_are_named_test_() ->
    Bad = [{heartbeat_interval_ms, 0}, {phi_threshold, 0}, {phi_threshold, 1000}, {phi_window, 1},
           {sample_interval_ms, 60000}, {thresholds, #{memory => 120}}, {thresholds, #{memroy => 90}},
           {hysteresis, -1}, {memory_limit, "1G"}, {top_k, -1}, {trend_min_r2, 2},
           {ingest_metrics, #{x => #{bounds => {1, 0}, scale => {0, 1}}}}, {metrics_port, 70000},
           {metrics_ip, "127.0.0.1"}],
    [?_assertEqual({error, {invalid_config, K, V}}, with_env(K, V, fun mape_k_config:validate/0)) || {K, V} <- Bad].

good_values_pass_test_() ->
    Good = [{memory_limit, 1 bsl 30}, {metrics_port, 0}, {metrics_port, none}, {thresholds, #{cpu => 95}},
            {metrics_ip, {0, 0, 0, 0, 0, 0, 0, 1}}],
    [?_assertEqual(ok, with_env(K, V, fun mape_k_config:validate/0)) || {K, V} <- Good].
