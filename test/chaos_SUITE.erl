%%% @doc Every chaos scenario, for real, on one 5-node cluster of peer nodes: injected, detected by
%%% the monitor's (or the workload's) event within the policy's detection time for its failure
%%% type, recovered (probes through every node outside the fault, plus the scenario's own
%%% condition) within the policy's recovery time, and healed back to a full healthy cluster.
%%% Then the orchestrator: an experiment that requires approval waits for it, and runs once
%%% approved.
-module(chaos_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([node_kill/1, process_kill/1, network_partition/1, backend_latency/1, backend_error/1,
         memory_pressure/1, cpu_saturation/1, approval_gates_an_experiment/1]).

all() ->
    [process_kill, backend_error, backend_latency, memory_pressure, cpu_saturation, network_partition,
     node_kill, approval_gates_an_experiment].

init_per_suite(Config) ->
    ok = autonomic_ct:ensure_distributed(),
    %% This node runs autonomic for the SLO tracker's metrics (the approval test).
    {ok, Started} = application:ensure_all_started(autonomic),
    Dir = filename:join(?config(priv_dir, Config), "cluster"),
    {ok, _} = chaos_cluster:start(#{size => 5, dir => Dir, rate => 10, prefix => "chaos"}),
    ok = healthy(30000),
    [{started, Started} | Config].

end_per_suite(Config) ->
    ok = chaos_cluster:stop(),
    _ = [application:stop(A) || A <- lists:reverse(?config(started, Config))],
    ok.

init_per_testcase(_, Config) ->
    _ = [erpc:call(N, chaos_forwarder, start, [self()]) || N <- chaos_cluster:live()],
    Config.

end_per_testcase(_, _Config) ->
    ok.

process_kill(_) ->
    scenario(process_kill, lists:nth(3, chaos_cluster:nodes())).

backend_error(_) ->
    scenario(backend_error, hd(chaos_cluster:nodes())).

backend_latency(_) ->
    %% The first store active now: after backend_error the nodes may have moved to the secondary.
    scenario(backend_latency, erpc:call(lists:nth(3, chaos_cluster:nodes()), jobs_backend, active, [])).

memory_pressure(_) ->
    scenario(memory_pressure, lists:nth(4, chaos_cluster:nodes())).

cpu_saturation(_) ->
    scenario(cpu_saturation, lists:nth(4, chaos_cluster:nodes())).

network_partition(_) ->
    V = not_leader(),
    Majority = lists:sort(chaos_cluster:live() -- [V]),
    %% The cut is real and holds: the minority sees nobody and is fenced; the majority keeps
    %% quorum and serves.
    During = fun() ->
                     timer:sleep(1000),
                     ?assertEqual([], chaos_cluster:call(V, erlang, nodes, []) -- [node()]),
                     ?assertMatch(#{have_quorum := false, mode := minority}, chaos_cluster:call(V, quorum_manager, get_quorum_status, [])),
                     [?assertEqual(Majority -- [N], lists:sort(chaos_cluster:call(N, erlang, nodes, []))) || N <- Majority]
             end,
    scenario(network_partition, {[V], Majority}, During).

node_kill(_) ->
    scenario(node_kill, not_leader()).

%% With require_approval the orchestrator proposes an experiment and injects nothing until it is
%% approved; approved, it runs, is detected and recovers.
approval_gates_an_experiment(_) ->
    {ok, _} = slo_tracker:start_link(#{}),
    {ok, _} = chaos_orchestrator:start_link(#{interval_ms => 500, duration_ms => 60000, seed => 3,
                                              require_approval => true, pause_on_alert => false,
                                              weights => #{process_kill => 1}}),
    try
        ok = autonomic_ct:wait_until(fun() -> chaos_orchestrator:pending() =/= [] end, 10000),
        timer:sleep(1500),
        [#{id := Id, scenario := process_kill}] = chaos_orchestrator:pending(),
        ?assertEqual([], chaos_orchestrator:faults()),
        ?assertEqual({error, not_found}, chaos_orchestrator:approve(Id + 100)),
        ok = chaos_orchestrator:approve(Id),
        ok = autonomic_ct:wait_until(fun() -> [O || #{outcome := O} <- chaos_orchestrator:faults(), O =/= undefined] =/= [] end, 20000),
        [#{id := Id, outcome := recovered, mttd_ms := D, mttr_ms := R}] = chaos_orchestrator:faults(),
        ct:pal("approved process_kill: detected after ~b ms, recovered after ~b ms", [D, R]),
        ?assertMatch(#{total_events := 1, successful_recoveries := 1}, chaos_orchestrator:report())
    after
        chaos_orchestrator:stop(),
        slo_tracker:stop()
    end.

%%% Helpers

scenario(S, V) ->
    scenario(S, V, fun() -> ok end).

scenario(S, V, During) ->
    Type = chaos_orchestrator:failure_type(S),
    #{detection_ms := DetectMs, recovery_ms := RecoverMs} = autonomic_policy:get([failure_modes, Type], #{}),
    flush(),
    T0 = erlang:system_time(millisecond),
    {ok, Ctx} = chaos_scenarios:inject(S, V),
    F = #{scenario => S, victim => V, injected_at => T0},
    #{type := By, node := On, at := At} = detected(F, T0 + DetectMs),
    Recovered = recovered(F, Ctx, T0 + RecoverMs),
    ct:pal("~p on ~p: detected by ~p on ~p after ~b ms, recovered after ~b ms", [S, V, By, On, At - T0, Recovered - T0]),
    During(),
    timer:sleep(chaos_scenarios:hold_ms(S)),
    ok = chaos_scenarios:heal(F, Ctx),
    ok = healthy(30000).

detected(F, Deadline) ->
    Left = Deadline - erlang:system_time(millisecond),
    receive
        {chaos_event, #{at := At} = E} when At >= map_get(injected_at, F) ->
            case chaos_scenarios:detects(F, E) of
                true -> E;
                false -> detected(F, Deadline)
            end;
        {chaos_event, _} ->
            detected(F, Deadline)
    after max(0, Left) ->
        ct:fail({not_detected, F})
    end.

recovered(F, Ctx, Deadline) ->
    T = erlang:system_time(millisecond),
    case chaos_scenarios:recovered(F, Ctx) of
        true -> T;
        false when T > Deadline -> ct:fail({not_recovered, F});
        false -> timer:sleep(50), recovered(F, Ctx, Deadline)
    end.

flush() ->
    receive {chaos_event, _} -> flush() after 0 -> ok end.

%% Every node up, with quorum, serving probes.
healthy(Timeout) ->
    autonomic_ct:wait_until(
      fun() ->
              Live = chaos_cluster:live(),
              length(Live) =:= 5 andalso
                  lists:all(fun(N) -> case catch erpc:call(N, quorum_manager, get_quorum_status, [], 2000) of
                                          #{have_quorum := true, members := M} -> length(M) =:= 5;
                                          _ -> false
                                      end andalso (catch erpc:call(N, jobs_example, probe, [1000], 2000)) =:= ok
                            end, Live)
      end, Timeout).

%% A node that is not the quorum leader (safe mode never takes the coordinator's node).
not_leader() ->
    [N | _] = chaos_cluster:live(),
    Leader = erpc:call(N, quorum_manager, leader, []),
    hd(lists:sort(chaos_cluster:live()) -- [Leader]).
