#!/usr/bin/env escript
%%! -noshell
%%% Writes a real /metrics scrape to the file named by its argument (`make test' feeds it to
%%% `promtool check metrics'): one
%%% distributed node running autonomic, the monitor, the Execute toolkit, the quorum manager,
%%% the jobs workload, the MAPE-K loop when it is built, and the SLO tracker, after the workload
%%% has run for two seconds and one fault has been recorded. It then checks that every metric
%%% the Grafana dashboard and the alert rules name is in the scrape (the loop's only when the
%%% loop is built), and fails naming the ones that are not.
-mode(compile).

main([Out]) ->
    Root = filename:dirname(filename:dirname(filename:absname(escript:script_name()))),
    [code:add_patha(Dir) || Dir <- filelib:wildcard(filename:join(Root, "_build/default/lib/*/ebin"))],
    _ = os:cmd("epmd -daemon"),
    {ok, _} = net_kernel:start(list_to_atom("autonomic_scrape_" ++ os:getpid()), #{name_domain => shortnames}),
    Dir = filename:join(Root, "_build/metrics_scrape_" ++ os:getpid()),
    ok = application:load(autonomic),
    ok = application:set_env(autonomic, data_dir, Dir),
    ok = application:load(autonomic_monitor),
    ok = application:set_env(autonomic_monitor, metrics_port, 0),
    Apps = [autonomic_quorum, jobs_example] ++ [autonomic_loop || code:lib_dir(autonomic_loop) =/= {error, bad_name}],
    [{ok, _} = application:ensure_all_started(A) || A <- Apps],
    {ok, _} = slo_tracker:start_link(#{}),
    timer:sleep(2000),
    slo_tracker:record_fault(#{id => 1, scenario => process_kill, outcome => recovered, injected_at => 0,
                               mttd_ms => 12, mttr_ms => 40}),
    timer:sleep(200),
    {ok, _} = application:ensure_all_started(inets),
    {ok, Port} = mape_k_http:port(),
    Url = "http://127.0.0.1:" ++ integer_to_list(Port) ++ "/metrics",
    {ok, {{_, 200, _}, _, Body}} = httpc:request(get, {Url, []}, [], []),
    ok = file:write_file(Out, Body),
    _ = os:cmd("rm -rf " ++ Dir),
    Exported = [N || ["#", "TYPE", N | _] <- [string:split(L, " ", all) || L <- string:split(Body, "\n", all)]],
    Loop = lists:member(autonomic_loop, Apps),
    Missing = lists:usort([N || F <- ["priv/grafana/resilience_dashboard.json", "priv/prometheus/alerts.yml"],
                                {ok, Text} <- [file:read_file(filename:join(Root, F))],
                                {match, Ms} <- [re:run(Text, "autonomic_[a-z_]+", [global, {capture, all, list}])],
                                [M] <- Ms, N <- [base(M)],
                                not lists:suffix("_", N),
                                Loop orelse not lists:prefix("autonomic_loop_", N),
                                not lists:member(N, Exported)]),
    case Missing of
        [] -> halt(0);
        _ -> io:format(standard_error, "metrics named by the dashboard or the alerts but not exported: ~p~n", [Missing]),
             halt(1)
    end.

%% A histogram's series name its family.
base(M) ->
    lists:foldl(fun(Suffix, Acc) ->
                        case lists:suffix(Suffix, Acc) of
                            true -> lists:sublist(Acc, length(Acc) - length(Suffix));
                            false -> Acc
                        end
                end, M, ["_bucket", "_sum", "_count"]).
