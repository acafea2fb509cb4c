%%% @doc The /metrics endpoint over real HTTP, checked by Prometheus's own tools:
%%% <ul>
%%%   <li>`GET /metrics' answers in the text format 0.0.4 with the monitor's metrics (phi per peer,
%%%       events by type, resources, health checks, ingest rejections, governor states), and
%%%       `promtool check metrics' accepts it; other paths are 404, other methods 405; the
%%%       endpoint listens on loopback only;</li>
%%%   <li>Debian's real `prometheus' server, started on loopback with a scrape config pointing at
%%%       this node (1 s interval), scrapes it, and a metric read back through its HTTP query API
%%%       has the value this node holds.</li>
%%% </ul>
-module(mape_k_prometheus_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([metrics_endpoint_passes_promtool/1, real_prometheus_scrapes_and_answers/1]).

suite() -> [{timetrap, {minutes, 3}}].

all() -> [metrics_endpoint_passes_promtool, real_prometheus_scrapes_and_answers].

init_per_suite(Config) ->
    ok = autonomic_ct:ensure_distributed(),
    ok = application:set_env(autonomic_monitor, metrics_port, 0),
    {ok, _} = application:ensure_all_started(autonomic_monitor),
    %% A peer, so that there is a phi to show, and some activity of every kind.
    {Peer, Node} = autonomic_ct:start_peer(prom, #{apps => [autonomic_monitor], env => [{autonomic_monitor, metrics_port, 0}]}),
    ok = autonomic_ct:wait_until(fun() -> maps:is_key(Node, mape_k_heartbeat:peers()) end, 10000),
    ok = mape_k_monitor:register_check(prom_db, fun() -> ok end, #{interval => 100}),
    ok = autonomic_ct:wait_until(fun() -> autonomic_metrics:value(autonomic_health_check_up, #{check => prom_db}) =:= 1 end, 5000),
    {error, _} = mape_k_monitor:ingest(#{tenant => <<>>, metric => cpu, value => 1, timestamp => 0}),
    Now = erlang:system_time(millisecond),
    [{ok, _} = mape_k_monitor:ingest(#{tenant => <<"prom">>, metric => cpu, value => V, timestamp => Now}) || V <- [10, 20, 30]],
    _ = mape_k_resources:sample_now(),
    {ok, Url} = mape_k_http:url(),
    [{peer, Peer}, {url, Url} | Config].

end_per_suite(Config) ->
    ok = mape_k_monitor:unregister_check(prom_db),
    catch peer:stop(?config(peer, Config)),
    ok = application:stop(autonomic_monitor).

%%% Tests

metrics_endpoint_passes_promtool(Config) ->
    Url = ?config(url, Config),
    ?assertMatch("http://127.0.0.1:" ++ _, Url),
    %% Counters are node-wide: other suites in this VM may have ingested too.
    Accepted = autonomic_metrics:value(autonomic_ingest_signals_total, #{result => accepted}),
    ?assert(Accepted >= 3),
    {ok, {{_, 200, _}, Headers, Body}} = httpc:request(get, {Url, []}, [{timeout, 5000}], [{body_format, binary}]),
    ?assertEqual("text/plain; version=0.0.4; charset=utf-8", proplists:get_value("content-type", Headers)),
    File = filename:join(?config(priv_dir, Config), "metrics.txt"),
    ok = file:write_file(File, Body),
    [?assertMatch({_, _}, binary:match(Body, Needle), Needle) || Needle <- [
        <<"autonomic_peer_phi{peer=\"">>,
        <<"autonomic_events_total{type=\"node_up\"}">>,
        <<"autonomic_memory_bytes{type=\"total\"}">>,
        <<"autonomic_resource_used_percent{mount=\"\",resource=\"memory\"}">>,
        <<"autonomic_health_check_up{check=\"prom_db\"} 1">>,
        <<"autonomic_ingest_rejected_total{reason=\"invalid_tenant\"}">>,
        <<"autonomic_ingest_signals_total{result=\"accepted\"} ", (integer_to_binary(Accepted))/binary, "\n">>,
        <<"autonomic_governor_tenants{state=\"stable\"}">>
    ]],
    Promtool = os:find_executable("promtool"),
    ?assertNotEqual(false, Promtool),
    {Status, Out} = run(Promtool, ["check", "metrics"], File),
    ct:log("promtool check metrics: exit ~p~n~ts", [Status, Out]),
    ?assertEqual({0, ""}, {Status, string:trim(Out)}),
    %% Only /metrics, only GET and HEAD.
    Base = string:replace(Url, "/metrics", "", trailing),
    {ok, {{_, 404, _}, _, _}} = httpc:request(lists:flatten([Base, "/other"])),
    {ok, {{_, 405, _}, _, _}} = httpc:request(post, {Url, [], "text/plain", "x"}, [], []),
    {ok, {{_, 200, _}, _, _}} = httpc:request(head, {Url, []}, [], []),
    %% Bound to loopback: the port is not open on the host's other addresses.
    {ok, Port} = mape_k_http:port(),
    case [A || {ok, Addrs} <- [inet:getif()], {A, _, _} <- Addrs, A =/= {127, 0, 0, 1}] of
        [Other | _] -> ?assertMatch({error, _}, gen_tcp:connect(Other, Port, [], 1000));
        [] -> {comment, "no non-loopback address to try"}
    end.

real_prometheus_scrapes_and_answers(Config) ->
    Prometheus = os:find_executable("prometheus"),
    ?assertNotEqual(false, Prometheus),
    {ok, Target} = mape_k_http:port(),
    Dir = filename:join(?config(priv_dir, Config), "prometheus"),
    ok = filelib:ensure_path(filename:join(Dir, "data")),
    Yml = filename:join(Dir, "prometheus.yml"),
    ok = file:write_file(Yml, io_lib:format(
        "global:~n  scrape_interval: 1s~n  evaluation_interval: 1s~n"
        "scrape_configs:~n  - job_name: autonomic~n    static_configs:~n      - targets: ['127.0.0.1:~b']~n",
        [Target])),
    ListenPort = free_port(),
    Api = lists:flatten(io_lib:format("http://127.0.0.1:~b", [ListenPort])),
    Port = open_port({spawn_executable, Prometheus}, [
        {args, ["--config.file=" ++ Yml, "--storage.tsdb.path=" ++ filename:join(Dir, "data"),
                "--web.listen-address=127.0.0.1:" ++ integer_to_list(ListenPort), "--log.level=warn"]},
        exit_status, stderr_to_stdout, binary]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    try
        ok = autonomic_ct:wait_until(fun() -> http_ok(Api ++ "/-/ready") end, 30000),
        %% The scrape target is up, and the value Prometheus stored is ours.
        Up = fun() -> query(Api, "up{job=\"autonomic\"}") =:= {ok, <<"1">>} end,
        ok = autonomic_ct:wait_until(Up, 30000),
        Accepted = integer_to_binary(autonomic_metrics:value(autonomic_ingest_signals_total, #{result => accepted})),
        ok = autonomic_ct:wait_until(
            fun() -> query(Api, "autonomic_ingest_signals_total{result=\"accepted\"}") =:= {ok, Accepted} end, 10000),
        Threshold = query(Api, "autonomic_phi_threshold"),
        ct:log("prometheus: up 1, accepted ~s, phi threshold ~p", [Accepted, Threshold]),
        ?assertEqual({ok, <<"8">>}, Threshold)
    after
        _ = os:cmd("kill " ++ integer_to_list(OsPid)),
        ct:log("prometheus exited: ~p", [await_exit(Port, 10000)])
    end.

%%% Helpers

%% The value of an instant query's single sample, through the HTTP API.
query(Api, PromQL) ->
    Url = Api ++ "/api/v1/query?query=" ++ uri_string:quote(PromQL),
    case httpc:request(get, {Url, []}, [{timeout, 5000}], [{body_format, binary}]) of
        {ok, {{_, 200, _}, _, Body}} ->
            %% {"status":"success","data":{"resultType":"vector","result":[{"metric":{...},"value":[T,"V"]}]}}
            case re:run(Body, <<"\"value\":\\[[0-9.]+,\"([^\"]+)\"\\]">>, [{capture, all_but_first, binary}]) of
                {match, [V]} -> {ok, V};
                nomatch -> {no_sample, Body}
            end;
        Other ->
            {error, Other}
    end.

http_ok(Url) ->
    case httpc:request(get, {Url, []}, [{timeout, 2000}], []) of
        {ok, {{_, 200, _}, _, _}} -> true;
        _ -> false
    end.

free_port() ->
    {ok, S} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, P} = inet:port(S),
    ok = gen_tcp:close(S),
    P.

%% Runs `Exe Args < InputFile'; returns {ExitStatus, Output}.
run(Exe, Args, InputFile) ->
    Cmd = lists:flatten([Exe, [[" ", A] || A <- Args], " < ", InputFile]),
    Port = open_port({spawn_executable, "/bin/sh"}, [{args, ["-c", Cmd]}, exit_status, stderr_to_stdout, binary]),
    collect(Port, <<>>).

collect(Port, Acc) ->
    receive
        {Port, {data, D}} -> collect(Port, <<Acc/binary, D/binary>>);
        {Port, {exit_status, S}} -> {S, unicode:characters_to_list(Acc)}
    after 30000 -> {timeout, unicode:characters_to_list(Acc)}
    end.

await_exit(Port, Timeout) ->
    receive
        {Port, {data, _}} -> await_exit(Port, Timeout);
        {Port, {exit_status, S}} -> {exit_status, S}
    after Timeout -> timeout
    end.
