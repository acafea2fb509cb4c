%%% @doc The main job, as CI runs it: the demo (chaos_demo) for 2 minutes at one fault every 5 s
%%% on a 5-node cluster of peer nodes running the jobs workload (and the MAPE-K loop when it is
%%% built). One run, several assertions: no acknowledged job lost, every node's ledger verifies,
%%% every fault detected, recovery success at least 95%, the JSON report written, and the SLO
%%% tracker's figures on this node's /metrics. The figures are printed (they are measurements,
%%% not assertions).
-module(demo_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([two_minutes_of_chaos/1]).

all() ->
    [two_minutes_of_chaos].

init_per_suite(Config) ->
    ok = autonomic_ct:ensure_distributed(),
    Config.

end_per_suite(_Config) ->
    ok.

two_minutes_of_chaos(Config) ->
    Dir = filename:join(?config(priv_dir, Config), "demo"),
    R = chaos_demo:run(#{duration_ms => 120000, interval_ms => 5000, seed => 11, dir => Dir,
                         metrics_port => 0, progress => false, rate => 20,
                         on_finish => fun metrics_check/0}),
    #{report := Report, audit := Audit, ledger := Ledger, report_file := File} = R,
    ct:pal("~s~naudit: ~p~nledger: ~p", [chaos_report:to_text(Report), Audit, Ledger]),
    %% No acknowledged job lost, and there was traffic.
    ?assertMatch(#{lost := 0}, Audit),
    ?assert(maps:get(acked, Audit) > 1000),
    %% Every node's ledger verifies.
    ?assertEqual(5, maps:size(Ledger)),
    [?assertEqual(ok, V) || V <- maps:values(Ledger)],
    %% Faults happened, every one was detected, and at least 95% recovered.
    #{total_events := Total, undetected := Undetected, events := Events, recovery_success_rate := Success} = Report,
    ?assert(Total >= 10),
    ?assertEqual(0, Undetected),
    [?assertNotEqual(undefined, maps:get(mttd_ms, E)) || E <- Events],
    ?assert(Success >= 0.95),
    {ok, Json} = file:read_file(File),
    ?assertMatch({match, _}, re:run(Json, "\"total_events\":" ++ integer_to_list(Total))),
    ok.

%% Called by the demo before it stops the tracker: the SLO figures are on /metrics.
metrics_check() ->
    {ok, _} = application:ensure_all_started(inets),
    {ok, Port} = mape_k_http:port(),
    {ok, {{_, 200, _}, _, Body}} = httpc:request("http://127.0.0.1:" ++ integer_to_list(Port) ++ "/metrics"),
    [?assertMatch({match, _}, re:run(Body, "^" ++ M, [multiline]), M)
     || M <- ["autonomic_slo_availability ", "autonomic_slo_probes_total\\{result=\"ok\"\\} ",
              "autonomic_slo_mttr_seconds_count", "autonomic_chaos_faults_total\\{", "autonomic_slo_compliance\\{"]],
    ok.
