%%% @doc The coordinator's controls on one real peer node (a cluster of one: cheap), with the
%%% test workload ({@link loop_wl}): more than two consecutive failures on a target pause for
%%% review (every gate result a receipt); a cycle past its time limit is aborted, rolled back
%%% and recorded; an operation waiting at its gates can be paused and resumed; an operation on
%%% a service waits while a service it depends on is under another operation; a node whose
%%% fence is up (minority) has no coordinator and executes nothing; cycles/1 and the metrics.
-module(loop_control_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([consecutive_failures_pause_for_review/1, cycle_time_limit_aborts_and_rolls_back/1,
         pause_and_resume/1, dependency_conflict_waits/1, fenced_node_never_executes/1, cycles_and_metrics/1,
         named_children_restarted_one_by_one/1, failover_never_moves_onto_a_down_target/1]).

suite() -> [{timetrap, {minutes, 3}}].

all() ->
    [consecutive_failures_pause_for_review, cycle_time_limit_aborts_and_rolls_back, pause_and_resume,
     dependency_conflict_waits, fenced_node_never_executes, cycles_and_metrics, named_children_restarted_one_by_one,
     failover_never_moves_onto_a_down_target].

%% One node runs one service: any restart of it disrupts all the services, so the blast radius
%% allows all of them.
policy() ->
    #{gates => #{cooldown_ms => 300, blast_radius => 1.0},
      loop => #{interval_ms => 2000, max_cycle_ms => 30000, lock_ttl_ms => 30000}}.

init_per_suite(Config) ->
    %% Resources are sampled once a minute (CPU at 100% only): CPU saturation of the shared test machine is
    %% not what these cases inject.
    Env = [{autonomic, policy, policy()}, {autonomic_execute, restart_cooldown_ms, 0},
           {autonomic_monitor, sample_interval_ms, 59000}, {autonomic_monitor, thresholds, #{cpu => 100}}],
    [Q] = loop_ct:start_cluster(1, #{dir => ?config(priv_dir, Config), env => Env}),
    loop_ct:wait_until(fun() -> element(1, loop_ct:call(Q, autonomic_loop, coordinator, [])) =:= ok end,
                       fun() -> no_coordinator end, 15000),
    [{node, Q} | Config].

end_per_suite(Config) ->
    loop_ct:stop_cluster([?config(node, Config)]).

init_per_testcase(_Case, Config) ->
    Q = ?config(node, Config),
    {ok, _} = loop_ct:call(Q, autonomic_policy, set, [policy()]),
    %% The previous case's operations are over (one still verifying would see this case's
    %% failure as its own).
    loop_ct:wait_until(fun() -> [O || #{state := S} = O <- ops(Q), S =/= paused_for_human_review] =:= [] end,
                       fun() -> ops(Q) end, 30000),
    Config.

end_per_testcase(_Case, Config) ->
    Q = ?config(node, Config),
    {ok, _} = loop_ct:call(Q, autonomic_policy, set, [policy()]),
    %% A review left open would keep its target's incidents from being planned again.
    _ = [loop_ct:call(Q, autonomic, reject, [Id]) || #{id := Id} <- reviews(Q)],
    ?assertEqual(ok, loop_ct:call(Q, autonomic_ledger, verify, [])),
    ok.

%% A service no restart heals: the first three operations run and fail verification; the
%% fourth pauses for review on the consecutive_failures gate.
consecutive_failures_pause_for_review(Config) ->
    Q = ?config(node, Config),
    Target = {service, node_of(Q), flaky},
    ok = loop_ct:call(Q, loop_wl, start_flaky, []),
    try
        loop_ct:wait_until(fun() -> [R || #{target := T} = R <- reviews(Q), T =:= Target] =/= [] end,
                           fun() -> {reviews(Q), loop_ct:final_of(Q, Target)} end, 60000),
        [#{id := Id, review := #{reason := {gates_failed, Failed}}}] = [R || #{target := T} = R <- reviews(Q), T =:= Target],
        ?assertMatch([{consecutive_failures, {fail, {consecutive_failures, 3, 2}}}], Failed),
        Finals = loop_ct:final_of(Q, Target),
        ?assertEqual([failed, failed, failed], [S || {_, S, _} <- Finals]),
        %% Every gate's result of the paused operation is a receipt.
        Gates = [G || {_, <<"loop.gate">>, #{gate := G}} <- loop_ct:op_receipts(Q, Id)],
        ?assertEqual(lists:sort([consecutive_failures, cooldown, incident_rate, error_budget, blast_radius, capacity_headroom]),
                     lists:sort(Gates)),
        %% The knowledge base learned the failures.
        #{failures := F} = loop_ct:call(Q, autonomic_kb, success_rate, [process_crash]),
        ?assert(F >= 3),
        ok = loop_ct:call(Q, autonomic, reject, [Id]),
        {failed, _} = await_op(Q, Id),
        ?assertMatch([#{decision := reject}], [H || {_, <<"loop.human">>, H} <- loop_ct:op_receipts(Q, Id)])
    after
        ok = loop_ct:call(Q, loop_wl, stop_service, [flaky, loop_wl_flaky_sup])
    end.

%% A policy whose cycle limit is shorter than the flood's verification: the cycle is aborted,
%% the throttle rolled back, and both recorded.
cycle_time_limit_aborts_and_rolls_back(Config) ->
    Q = ?config(node, Config),
    Tenant = <<"slowpoke">>,
    {ok, _} = loop_ct:call(Q, autonomic_policy, set, [(policy())#{loop => #{interval_ms => 1000, max_cycle_ms => 1000,
                                                                             lock_ttl_ms => 30000}}]),
    ok = loop_ct:call(Q, loop_wl, flood, [Tenant, 100]),
    Target = {tenant, node_of(Q), Tenant},
    try
        loop_ct:wait_until(fun() -> loop_ct:final_of(Q, Target) =/= [] end, fun() -> loop_ct:call(Q, autonomic_loop, operations, []) end, 20000),
        [{_, rolled_back, #{op := Op, detail := #{reason := {aborted, cycle_time_limit}}}} | _] = loop_ct:final_of(Q, Target),
        Rollbacks = [R || {_, <<"loop.rollback">>, R} <- loop_ct:op_receipts(Q, Op)],
        ?assertMatch([#{action := #{strategy := throttle}, result := {ok, _}}], Rollbacks),
        ?assertEqual({0, false}, controls(Q, Tenant)),
        Aborted = [C || {_, _, #{result := aborted} = C} <- loop_ct:journal(Q, [<<"loop.cycle">>])],
        ?assertNotEqual([], Aborted)
    after
        ok = loop_ct:call(Q, loop_wl, stop_flood, [Tenant]),
        {ok, _} = loop_ct:call(Q, autonomic_policy, set, [policy()])
    end.

%% The second of two incidents on one target waits at the cooldown gate; paused there, it waits
%% for a human; resumed, it runs.
pause_and_resume(Config) ->
    Q = ?config(node, Config),
    {ok, _} = loop_ct:call(Q, autonomic_policy, set, [(policy())#{gates => #{cooldown_ms => 60000, blast_radius => 1.0}}]),
    Target = {service, node_of(Q), wl},
    ok = loop_ct:call(Q, mape_k_monitor, report_failure, [#{kind => process_crash, service => wl}]),
    ok = loop_ct:call(Q, mape_k_monitor, report_failure, [#{kind => memory_leak, service => wl}]),
    loop_ct:wait_until(fun() -> [O || #{target := T, state := safety_check} = O <- ops(Q), T =:= Target] =/= [] end,
                       fun() -> ops(Q) end, 20000),
    %% Both ran their gates; one passed (it may already be final), the other waits.
    timer:sleep(500),
    [#{id := Id}] = [O || #{target := T, state := safety_check} = O <- ops(Q), T =:= Target],
    ok = loop_ct:call(Q, autonomic, pause, [Id]),
    loop_ct:wait_until(fun() -> [R || #{id := I} = R <- reviews(Q), I =:= Id] =/= [] end, fun() -> ops(Q) end, 5000),
    [#{review := #{reason := paused_by_human}}] = [R || #{id := I} = R <- reviews(Q), I =:= Id],
    ?assertMatch({error, {invalid_state, _}}, loop_ct:call(Q, autonomic, pause, [Id])),
    ok = loop_ct:call(Q, autonomic, resume, [Id]),
    {completed, _} = await_op(Q, Id),
    ?assertEqual([pause, resume], [D || {_, <<"loop.human">>, #{decision := D}} <- loop_ct:op_receipts(Q, Id)]).

%% api depends on wl: an operation on api waits until the one on wl is final.
dependency_conflict_waits(Config) ->
    Q = ?config(node, Config),
    ok = loop_ct:call(Q, loop_wl, start_api, []),
    try
        WlTarget = {service, node_of(Q), wl},
        ApiTarget = {service, node_of(Q), api},
        ok = loop_ct:call(Q, loop_wl, crash_service, [1500]),
        ok = loop_ct:call(Q, loop_wl, crash, [loop_wl_api_sup]),
        loop_ct:wait_until(fun() -> loop_ct:final_of(Q, ApiTarget) =/= [] end, fun() -> ops(Q) end, 30000),
        [{_, completed, #{op := ApiOp}}] = loop_ct:final_of(Q, ApiTarget),
        {WlFinal, _, #{op := WlOp}} = lists:last(loop_ct:final_of(Q, WlTarget)),
        [{ApiLocked, _, _}] = [R || {_, <<"loop.operation.locked">>, _} = R <- loop_ct:op_receipts(Q, ApiOp)],
        [{WlLocked, _, _}] = [R || {_, <<"loop.operation.locked">>, _} = R <- loop_ct:op_receipts(Q, WlOp)],
        ?assert(WlLocked < ApiLocked),
        ?assert(WlFinal < ApiLocked),
        ?assert(loop_ct:call(Q, loop_wl, healthy, []))
    after
        ok = loop_ct:call(Q, loop_wl, set_init_delay, [0]),
        ok = loop_ct:call(Q, loop_wl, stop_service, [api, loop_wl_api_sup])
    end.

%% With its fence up (what minority mode does), a node has no coordinator and nothing is
%% executed; with the fence down the loop heals what happened meanwhile.
fenced_node_never_executes(Config) ->
    Q = ?config(node, Config),
    ok = loop_ct:call(Q, autonomic, set_fence, [true]),
    try
        loop_ct:wait_until(fun() -> loop_ct:call(Q, autonomic_loop, coordinator, []) =:= {error, no_coordinator} end,
                           fun() -> still_coordinator end, 5000),
        ?assertEqual({error, no_coordinator}, loop_ct:call(Q, autonomic, cycles, [1])),
        ok = loop_ct:call(Q, loop_wl, crash_service, []),
        timer:sleep(2000),
        ?assertNot(loop_ct:call(Q, loop_wl, healthy, []))
    after
        ok = loop_ct:call(Q, autonomic, set_fence, [false])
    end,
    loop_ct:wait_until(fun() -> loop_ct:call(Q, loop_wl, healthy, []) end, fun() -> loop_ct:call(Q, loop_wl, pids, []) end, 15000).

%% cycles/1 reports the phases of each cycle; the metrics of the contract are exported.
cycles_and_metrics(Config) ->
    Q = ?config(node, Config),
    ok = loop_ct:call(Q, loop_wl, collect_events, []),
    ok = loop_ct:call(Q, loop_wl, crash_service, []),
    Of = fun(T) -> [D || #{type := Ty, detail := D} <- loop_ct:call(Q, loop_wl, events, []), Ty =:= T] end,
    loop_ct:wait_until(fun() -> Of(operation_finished) =/= [] end, fun() -> ops(Q) end, 15000),
    ?assert(loop_ct:call(Q, loop_wl, healthy, [])),
    %% The contract's events, with their keys.
    [#{incident := Inc, failure_type := process_crash, target := {service, _, wl}, symptoms := [_ | _], detected_at := _} | _] =
        Of(incident_detected),
    [#{op := Op, incident := Inc, strategy := supervisor_restart} | _] = Of(operation_started),
    [#{op := Op, outcome := completed, recovered := true, total_ms := Total, detected_at := _, finished_at := _} | _] =
        Of(operation_finished),
    ?assert(Total >= 0),
    loop_ct:wait_until(fun() -> [E || #{failures_handled := 1, recovered := true} = E <- Of(cycle_completed)] =/= [] end,
                       fun() -> Of(cycle_completed) end, 10000),
    %% The cycle that handled it, with its phase times.
    [C] = [C || #{operations := Ops} = C <- loop_ct:call(Q, autonomic, cycles, [10]), lists:member(Op, Ops)],
    [?assert(is_integer(maps:get(K, C)) andalso maps:get(K, C) >= 0)
     || K <- [detection_ms, analysis_ms, planning_ms, execution_ms, total_ms]],
    ?assert(maps:get(total_ms, C) >= maps:get(execution_ms, C)),
    ?assertMatch(#{recovered := true, failures_handled := 1, result := ok}, C),
    ?assertEqual({error, {invalid_count, -1}}, loop_ct:call(Q, autonomic, cycles, [-1])),
    Text = iolist_to_binary(loop_ct:call(Q, autonomic_metrics, render, [])),
    [?assertNotEqual(nomatch, binary:match(Text, M), M)
     || M <- [<<"autonomic_loop_cycles_total{result=\"ok\"}">>, <<"autonomic_loop_phase_seconds_count{phase=\"total\"}">>,
              <<"autonomic_loop_operations_total{outcome=\"completed\",strategy=\"supervisor_restart\"}">>,
              <<"autonomic_loop_operations_in_progress">>, <<"autonomic_loop_pending_reviews">>,
              <<"autonomic_loop_lock_oldest_seconds">>, <<"autonomic_loop_is_coordinator 1">>]].

%% A service that names the children the loop may restart: a failure reported on it (its
%% supervisor running) restarts those children, not the supervisor.
named_children_restarted_one_by_one(Config) ->
    Q = ?config(node, Config),
    ok = loop_ct:call(Q, loop_wl, start_api, []),
    try
        ok = loop_ct:call(Q, autonomic_loop, register_service,
                          [api, #{supervisor => loop_wl_api_sup, parent => loop_wl_top, children => [api1]}]),
        ?assertEqual({error, {invalid, children, []}},
                     loop_ct:call(Q, autonomic_loop, register_service, [api, #{supervisor => loop_wl_api_sup, children => []}])),
        Sup = loop_ct:call(Q, erlang, whereis, [loop_wl_api_sup]),
        Api1 = loop_ct:call(Q, erlang, whereis, [api1]),
        Target = {service, node_of(Q), api},
        Before = loop_ct:final_of(Q, Target),
        ok = loop_ct:call(Q, mape_k_monitor, report_failure, [#{kind => process_crash, service => api}]),
        loop_ct:wait_until(fun() -> loop_ct:final_of(Q, Target) -- Before =/= [] end, fun() -> ops(Q) end, 15000),
        [{_, completed, #{op := Op}}] = loop_ct:final_of(Q, Target) -- Before,
        ?assertMatch([#{action := {restart_children, _, [api1]}}],
                     [A || {_, <<"loop.action">>, A} <- loop_ct:op_receipts(Q, Op)]),
        ?assertEqual(Sup, loop_ct:call(Q, erlang, whereis, [loop_wl_api_sup])),
        ?assertNotEqual(Api1, loop_ct:call(Q, erlang, whereis, [api1]))
    after
        ok = loop_ct:call(Q, loop_wl, stop_service, [api, loop_wl_api_sup])
    end.

%% A backend whose targets each have a check (`target_checks'): the application itself failed
%% over from `kv_a' to `kv_b' and then `kv_a' broke. Its check stays down, which is an incident,
%% but the loop must not move the backend back onto the broken target: it completes without a
%% failover. Then `kv_b' breaks too while `kv_a' is repaired: the loop fails over to `kv_a'.
failover_never_moves_onto_a_down_target(Config) ->
    Q = ?config(node, Config),
    Target = {backend, node_of(Q), wl_kv},
    ok = loop_ct:call(Q, loop_wl, start_kv, []),
    try
        Before = loop_ct:final_of(Q, Target),
        {ok, kv_a} = loop_ct:call(Q, autonomic_backends, failover, [wl_kv, kv_a, kv_b]),
        ok = loop_ct:call(Q, loop_wl, break_target, [kv_a]),
        loop_ct:wait_until(fun() -> loop_ct:final_of(Q, Target) -- Before =/= [] end, fun() -> ops(Q) end, 15000),
        [{_, completed, #{op := Op1}} | _] = loop_ct:final_of(Q, Target) -- Before,
        ?assertMatch([#{result := {already_on_healthy_target, kv_b}}],
                     [A || {_, <<"loop.action">>, A} <- loop_ct:op_receipts(Q, Op1)]),
        ?assertEqual({ok, kv_b}, loop_ct:call(Q, autonomic_backends, target, [wl_kv])),
        %% Now the active target fails and the other one is healthy again.
        ok = loop_ct:call(Q, loop_wl, repair_target, [kv_a]),
        loop_ct:wait_until(fun() -> kv_check_up(Q, wl_kv_a) andalso ops(Q) =:= [] end,
                           fun() -> {ops(Q), loop_ct:call(Q, mape_k_checks, status, [])} end, 15000),
        Mid = loop_ct:final_of(Q, Target),
        ok = loop_ct:call(Q, loop_wl, break_target, [kv_b]),
        loop_ct:wait_until(fun() -> [S || {_, S, _} <- loop_ct:final_of(Q, Target) -- Mid] =/= [] end,
                           fun() -> ops(Q) end, 15000),
        [{_, completed, #{op := Op2}} | _] = loop_ct:final_of(Q, Target) -- Mid,
        ?assertMatch([#{action := {failover, wl_kv, kv_b, kv_a}}],
                     [A || {_, <<"loop.action">>, A} <- loop_ct:op_receipts(Q, Op2)]),
        ?assertEqual({ok, kv_a}, loop_ct:call(Q, autonomic_backends, target, [wl_kv]))
    after
        ok = loop_ct:call(Q, loop_wl, stop_kv, [])
    end.

kv_check_up(Q, C) ->
    case loop_ct:call(Q, mape_k_checks, status, []) of
        #{C := #{state := up}} -> true;
        _ -> false
    end.

%%% Helpers

node_of(#{node := N}) -> N.

ops(Q) ->
    case loop_ct:call(Q, autonomic_loop, operations, []) of
        L when is_list(L) -> L;
        _ -> []
    end.

reviews(Q) ->
    case loop_ct:call(Q, autonomic, pending_reviews, []) of
        L when is_list(L) -> L;
        _ -> []
    end.

controls(Q, Tenant) ->
    loop_ct:call(Q, autonomic_bucket, controls, [Tenant]).

await_op(Q, Id) ->
    Finals = [<<"loop.operation.completed">>, <<"loop.operation.rolled_back">>, <<"loop.operation.failed">>],
    Find = fun() -> [{S, D} || {_, _, #{op := O, state := S} = D} <- loop_ct:journal(Q, Finals), O =:= Id] end,
    loop_ct:wait_until(fun() -> Find() =/= [] end, fun() -> loop_ct:op_receipts(Q, Id) end, 30000),
    hd(Find()).
