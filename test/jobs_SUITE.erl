%%% @doc The jobs workload on a real 3-node cluster (chaos_cluster: peer nodes): every acknowledged
%%% job is processed at least once across a `kill -9' of the primary store's node and then of the
%%% secondary's (the restarted primary must have refilled itself), across workers killed
%%% mid-job, and a failing store is failed over on every node.
-module(jobs_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([store_fault_fails_over_everywhere/1, kill9_primary_then_secondary_loses_no_acknowledged_job/1]).

all() ->
    [store_fault_fails_over_everywhere, kill9_primary_then_secondary_loses_no_acknowledged_job].

init_per_suite(Config) ->
    ok = autonomic_ct:ensure_distributed(),
    Dir = filename:join(?config(priv_dir, Config), "cluster"),
    {ok, _} = chaos_cluster:start(#{size => 3, dir => Dir, rate => 40, prefix => "jobs"}),
    [{dir, Dir} | Config].

end_per_suite(_Config) ->
    chaos_cluster:stop().

%% An injected error on the primary store: its health check goes down, every node fails over to
%% the secondary, and probes keep succeeding through every node while the fault lasts.
store_fault_fails_over_everywhere(_Config) ->
    [P, S, _] = Nodes = chaos_cluster:nodes(),
    Up = fun(N) -> lists:all(fun(#{state := St}) -> St =:= up end,
                             maps:values(maps:with([jobs_store_primary, jobs_store_secondary], erpc:call(N, mape_k_monitor, checks, []))))
                 andalso lists:all(fun(X) -> closed =:= breaker_state(N, X) end,
                                   [P, S])
         end,
    %% A healthy cluster first: at start, clients that wrote to a store not yet running opened
    %% its breaker for a moment.
    ok = autonomic_ct:wait_until(fun() -> lists:all(Up, Nodes) end, 10000),
    [?assertEqual(P, erpc:call(N, jobs_backend, active, [])) || N <- Nodes],
    ok = erpc:call(P, jobs_store, set_fault, [#{error => true}]),
    try
        ok = autonomic_ct:wait_until(fun() -> lists:all(fun(N) -> erpc:call(N, jobs_backend, active, []) =:= S end, Nodes) end, 10000),
        [?assertEqual(ok, erpc:call(N, jobs_example, probe, [1000])) || N <- Nodes],
        ?assertMatch(#{jobs_store_primary := #{state := down}}, erpc:call(S, mape_k_monitor, checks, []))
    after
        ok = erpc:call(P, jobs_store, clear_fault, [])
    end,
    ok = autonomic_ct:wait_until(fun() -> maps:get(state, maps:get(jobs_store_primary, erpc:call(S, mape_k_monitor, checks, []))) =:= up end, 10000).

kill9_primary_then_secondary_loses_no_acknowledged_job(_Config) ->
    [P, S, Third] = chaos_cluster:nodes(),
    timer:sleep(2000),
    %% Workers killed mid-job on every node, again and again: leases hand their jobs out again.
    [begin
         [erpc:call(N, erlang, exit, [Pid, kill]) || N <- chaos_cluster:live(),
                                                     {_, Pid, _, _} <- erpc:call(N, supervisor, which_children, [jobs_worker_sup]), is_pid(Pid)],
         timer:sleep(200)
     end || _ <- lists:seq(1, 5)],
    #{acked := AckedBefore} = erpc:call(P, jobs_example, stats, []),
    ?assert(AckedBefore > 0),
    ok = chaos_cluster:kill(P),
    ok = autonomic_ct:wait_until(fun() -> erpc:call(Third, jobs_backend, active, []) =:= S end, 10000),
    ?assertEqual(ok, erpc:call(Third, jobs_example, probe, [2000])),
    timer:sleep(1000),
    ok = chaos_cluster:restart(P),
    %% The restarted primary fills itself from the secondary before the secondary goes.
    ok = autonomic_ct:wait_until(fun() -> erpc:call(P, jobs_sync, now, []) =:= ok end, 10000),
    timer:sleep(1000),
    ok = chaos_cluster:kill(S),
    ok = autonomic_ct:wait_until(fun() -> erpc:call(Third, jobs_backend, active, []) =:= P end, 10000),
    timer:sleep(1000),
    ok = chaos_cluster:restart(S),
    %% Stop the clients, let the workers drain, audit.
    [ok = erpc:call(N, supervisor, terminate_child, [jobs_example_sup, jobs_client]) || N <- chaos_cluster:live()],
    Audit = wait_audit(30000),
    ct:pal("audit: ~p", [Audit]),
    #{acked := Acked, lost := Lost} = Audit,
    ?assertEqual(0, Lost),
    ?assert(Acked > AckedBefore),
    %% The killed primary's own acknowledged jobs are in the audit (read from its ack log).
    Dir = chaos_cluster:dir(),
    {ok, FromP} = jobs_example:read_ack_log(filename:join([Dir, atom_to_list(P), "jobs_acked.log"])),
    ?assert(length(FromP) >= AckedBefore).

wait_audit(Left) ->
    A = chaos_demo:audit(),
    case A of
        #{lost := 0} -> A;
        _ when Left =< 0 -> A;
        _ -> timer:sleep(500), wait_audit(Left - 500)
    end.

breaker_state(N, Store) ->
    {ok, #{state := St}} = erpc:call(N, autonomic_breaker, info, [jobs_backend:breaker(Store)]),
    St.
