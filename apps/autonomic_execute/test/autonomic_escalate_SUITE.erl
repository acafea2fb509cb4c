%%% @doc Escalation against real receivers: the logger (always), user callbacks (including one
%%% that crashes and one that hangs, which harm no other), and webhooks posted with `httpc' to a
%%% real HTTP server (inets httpd, started here): the JSON body, retries on 5xx, no retry on 4xx,
%%% an unreachable endpoint, and the webhook from the configuration; the event on the bus; bad
%%% input.
-module(autonomic_escalate_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([logger_and_callbacks/1, a_bad_handler_harms_no_other/1, webhook_posts_json/1,
         webhook_retries_server_errors/1, webhook_does_not_retry_client_errors/1, unreachable_webhook/1,
         configured_webhook/1, bad_input/1]).

suite() -> [{timetrap, {minutes, 2}}].

all() ->
    [logger_and_callbacks, a_bad_handler_harms_no_other, webhook_posts_json, webhook_retries_server_errors,
     webhook_does_not_retry_client_errors, unreachable_webhook, configured_webhook, bad_input].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(inets),
    Root = ?config(priv_dir, Config),
    {ok, Httpd} = inets:start(httpd, [{port, 0}, {server_name, "webhook"}, {server_root, Root},
                                      {document_root, Root}, {bind_address, {127, 0, 0, 1}},
                                      {modules, [escalate_webhook_mod]}]),
    Port = proplists:get_value(port, httpd:info(Httpd)),
    Url = "http://127.0.0.1:" ++ integer_to_list(Port) ++ "/hooks/autonomic",
    Env = execute_test_env:start([{escalation_webhook, Url}, {escalation_timeout_ms, 1500}]),
    [{httpd, Httpd}, {url, Url}, {env, Env} | Config].

end_per_suite(Config) ->
    execute_test_env:stop(?config(env, Config)),
    inets:stop(httpd, ?config(httpd, Config)).

init_per_testcase(_TC, Config) ->
    %% The table lives as long as the test case's process.
    _ = ets:new(webhook_requests, [named_table, public, ordered_set]),
    persistent_term:put(escalate_webhook_mod, [200]),
    ok = autonomic_escalate:unregister_handler(webhook),
    Config.

end_per_testcase(_TC, _Config) ->
    [ok = autonomic_escalate:unregister_handler(Id) || {Id, _} <- autonomic_escalate:handlers()],
    _ = persistent_term:erase(escalate_webhook_mod),
    ok.

requests() ->
    [{Method, Uri, Type, Body} || {N, Method, Uri, Type, Body} <- ets:tab2list(webhook_requests), is_integer(N)].

%%% Tests

logger_and_callbacks(_Config) ->
    Self = self(),
    ok = logger:add_handler(capture, escalate_log_capture, #{config => #{pid => Self}}),
    ok = autonomic_events:subscribe(local),
    ok = autonomic_escalate:register_handler(pager, fun(E) -> Self ! {paged, E} end),
    ok = autonomic_escalate:register_handler(<<"chat">>, fun(E) -> Self ! {chat, E}, ok end),
    try
        {ok, Results} = autonomic_escalate:escalate(critical, "db failover failed", #{backend => db}),
        ?assertEqual(#{logger => ok, pager => ok, <<"chat">> => ok}, Results),
        receive {paged, #{severity := critical, summary := <<"db failover failed">>, detail := #{backend := db},
                          node := N, id := _, at := _}} -> ?assertEqual(node(), N)
        after 1000 -> error(not_paged) end,
        receive {chat, #{summary := <<"db failover failed">>}} -> ok after 1000 -> error(no_chat) end,
        receive {logged, #{level := critical}} -> ok after 1000 -> error(not_logged) end,
        receive {autonomic_event, #{type := escalation, detail := #{summary := <<"db failover failed">>}}} -> ok
        after 1000 -> error(no_event) end,
        ?assertEqual(1, autonomic_metrics:value(autonomic_escalations_total, #{severity => critical})),
        ?assertEqual(1, autonomic_metrics:value(autonomic_escalation_deliveries_total, #{handler => pager, outcome => ok})),
        %% With no handler at all, the logger still gets it.
        [ok = autonomic_escalate:unregister_handler(Id) || Id <- [pager, <<"chat">>]],
        ?assertEqual({ok, #{logger => ok}}, autonomic_escalate:escalate(warning, <<"disk 91%">>, #{})),
        receive {logged, #{level := warning}} -> ok after 1000 -> error(not_logged) end
    after
        ok = logger:remove_handler(capture),
        autonomic_events:unsubscribe()
    end.

a_bad_handler_harms_no_other(_Config) ->
    Self = self(),
    ok = autonomic_escalate:register_handler(crashes, fun(_) -> error(boom) end),
    ok = autonomic_escalate:register_handler(hangs, fun(_) -> timer:sleep(infinity) end),
    ok = autonomic_escalate:register_handler(refuses, fun(_) -> {error, quota} end),
    ok = autonomic_escalate:register_handler(good, fun(E) -> Self ! {good, E} end),
    T0 = erlang:monotonic_time(millisecond),
    {ok, Results} = autonomic_escalate:escalate(error, <<"x">>, #{}),
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    ?assertMatch(#{logger := ok, good := ok, crashes := {error, {error, boom}}, hangs := {error, timeout},
                   refuses := {error, quota}}, Results),
    %% The hanging handler is cut at escalation_timeout_ms (1.5 s here).
    ?assert(Elapsed >= 1500 andalso Elapsed < 3000, Elapsed),
    receive {good, _} -> ok after 0 -> error(good_not_called) end,
    %% escalate_async returns at once and still delivers.
    T1 = erlang:monotonic_time(millisecond),
    ok = autonomic_escalate:escalate_async(error, <<"y">>, #{}),
    ?assert(erlang:monotonic_time(millisecond) - T1 < 500),
    receive {good, #{summary := <<"y">>}} -> ok after 3000 -> error(async_not_delivered) end.

webhook_posts_json(Config) ->
    ok = autonomic_escalate:register_handler(ops, {webhook, ?config(url, Config)}),
    {ok, #{ops := ok}} = autonomic_escalate:escalate(critical, <<"restart of db_sup failed">>,
                                                     #{receipt => <<"0190">>, pids => [self()]}),
    [{"POST", "/hooks/autonomic", "application/json", Body}] = requests(),
    Json = list_to_binary(Body),
    [?assertNotEqual(nomatch, binary:match(Json, Part), Part)
     || Part <- [<<"\"severity\":\"critical\"">>, <<"\"summary\":\"restart of db_sup failed\"">>,
                 <<"\"detail\":{\"pids\":[\"<">>, <<"\"receipt\":\"0190\"">>,
                 <<"\"node\":\"", (atom_to_binary(node()))/binary, "\"">>]].

webhook_retries_server_errors(Config) ->
    persistent_term:put(escalate_webhook_mod, [503, 500, 200]),
    ok = autonomic_escalate:register_handler(ops, {webhook, list_to_binary(?config(url, Config)), #{max_attempts => 3}}),
    {ok, #{ops := ok}} = autonomic_escalate:escalate(error, <<"x">>, #{}),
    ?assertEqual(3, length(requests())),
    %% Every attempt failing: the last status.
    ets:delete_all_objects(webhook_requests),
    persistent_term:put(escalate_webhook_mod, [502]),
    {ok, #{ops := {error, {http_status, 502}}}} = autonomic_escalate:escalate(error, <<"x">>, #{}),
    ?assertEqual(3, length(requests())).

webhook_does_not_retry_client_errors(Config) ->
    persistent_term:put(escalate_webhook_mod, [404, 200]),
    ok = autonomic_escalate:register_handler(ops, {webhook, ?config(url, Config)}),
    {ok, #{ops := {error, {http_status, 404}}}} = autonomic_escalate:escalate(error, <<"x">>, #{}),
    ?assertEqual(1, length(requests())).

unreachable_webhook(_Config) ->
    %% A port nobody listens on.
    {ok, L} = gen_tcp:listen(0, []),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    ok = autonomic_escalate:register_handler(ops, {webhook, "http://127.0.0.1:" ++ integer_to_list(Port) ++ "/"}),
    {ok, #{ops := {error, _}, logger := ok}} = autonomic_escalate:escalate(error, <<"x">>, #{}).

configured_webhook(Config) ->
    %% The suite configured escalation_webhook; init_per_testcase unregistered it, so restart
    %% the registry to see it registered from the configuration.
    ok = supervisor:terminate_child(autonomic_execute_sup, autonomic_escalate),
    {ok, _} = supervisor:restart_child(autonomic_execute_sup, autonomic_escalate),
    Url = ?config(url, Config),
    ?assertEqual([{webhook, {webhook, Url}}], autonomic_escalate:handlers()),
    {ok, #{webhook := ok}} = autonomic_escalate:escalate(info, <<"hello">>, #{}),
    ?assertEqual(1, length(requests())).

bad_input(_Config) ->
    ?assertEqual({error, {invalid_severity, fatal}}, autonomic_escalate:escalate(fatal, <<"x">>, #{})),
    ?assertEqual({error, {invalid_summary, 42}}, autonomic_escalate:escalate(error, 42, #{})),
    ?assertEqual({error, {invalid_detail, []}}, autonomic_escalate:escalate(error, <<"x">>, [])),
    ?assertEqual({error, {invalid_severity, fatal}}, autonomic_escalate:escalate_async(fatal, <<"x">>, #{})),
    ?assertEqual({error, {invalid_handler, {webhook, "ftp://x/"}}},
                 autonomic_escalate:register_handler(h, {webhook, "ftp://x/"})),
    ?assertEqual({error, {invalid_handler, {webhook, "http://x/", #{retries => 2}}}},
                 autonomic_escalate:register_handler(h, {webhook, "http://x/", #{retries => 2}})),
    ?assertEqual({error, {invalid_handler, fun erlang:self/0}}, autonomic_escalate:register_handler(h, fun erlang:self/0)),
    ?assertEqual({error, {invalid_id, {h}}}, autonomic_escalate:register_handler({h}, fun(_) -> ok end)),
    ?assertEqual({error, {reserved_id, logger}}, autonomic_escalate:register_handler(logger, fun(_) -> ok end)),
    ?assertEqual([], autonomic_escalate:handlers()).
