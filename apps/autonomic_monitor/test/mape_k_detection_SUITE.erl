%%% @doc Failure detection across real nodes, with real faults:
%%% <ul>
%%%   <li>crash: `kill -9' of a peer's OS process gives `node_down' within 1 s;</li>
%%%   <li>hang: `kill -STOP' gives `node_suspected' within 3 s at the default heartbeat while
%%%       `net_kernel' still lists the node, and `kill -CONT' gives `node_recovered';</li>
%%%   <li>no false suspicion: 5 nodes for 60 s with the other core kept busy by `yes' raise no
%%%       `node_suspected', while every node kept hearing every other;</li>
%%%   <li>node_up, node status and the connectivity matrix of a healthy cluster.</li>
%%% </ul>
-module(mape_k_detection_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([crash_gives_node_down_within_1s/1, silent_from_the_first_moment_is_suspected/1, hang_gives_node_suspected_within_3s/1,
         no_false_suspicion_under_load/1, healthy_cluster_matrix/1, stopped_monitor_is_not_a_hang/1,
         paused_observer_blames_no_one/1]).

suite() -> [{timetrap, {minutes, 5}}].

all() -> [healthy_cluster_matrix, crash_gives_node_down_within_1s, hang_gives_node_suspected_within_3s,
          stopped_monitor_is_not_a_hang, silent_from_the_first_moment_is_suspected,
          paused_observer_blames_no_one, no_false_suspicion_under_load].

init_per_suite(Config) ->
    ok = autonomic_ct:ensure_distributed(),
    ok = application:set_env(autonomic_monitor, metrics_port, 0),
    {ok, _} = application:ensure_all_started(autonomic_monitor),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(autonomic_monitor).

init_per_testcase(_Case, Config) ->
    ok = mape_k_monitor:subscribe(local),
    Config.

end_per_testcase(_Case, Config) ->
    ok = mape_k_monitor:unsubscribe(self()),
    [begin
         _ = os:cmd("kill -CONT " ++ OsPid),
         catch peer:stop(Peer)
     end || {Peer, OsPid} <- proplists:get_value(cleanup, Config, [])],
    ok.

%%% Tests

healthy_cluster_matrix(_Config) ->
    Peers = start_peers(mx, 2),
    Nodes = lists:sort([node() | [N || {_, N, _} <- Peers]]),
    [receive {autonomic_event, #{type := node_up, node := Me, detail := #{peer := N}}} when Me =:= node() -> ok
     after 5000 -> ct:fail({no_node_up, N})
     end || {_, N, _} <- Peers],
    %% Every node's row reaches every node by gossip; the cluster is one group.
    ok = autonomic_ct:wait_until(fun() -> mape_k_monitor:partitions() =:= [Nodes] end, 10000),
    ?assertEqual(maps:from_list([{N, Nodes} || N <- Nodes]), mape_k_monitor:connectivity()),
    ?assertEqual(maps:from_list([{N, up} || N <- Nodes -- [node()]]), mape_k_monitor:node_status()),
    ?assertMatch(#{partitioned := false}, mape_k_monitor:partition_status()),
    %% Each node hears every other and none is suspected.
    [ok = autonomic_ct:wait_until(fun() -> heard_all(N, Nodes) end, 5000) || N <- Nodes],
    [?assertMatch(#{suspected := false}, maps:get(N, mape_k_heartbeat:peers())) || N <- Nodes -- [node()]],
    #{nodes := _, peers := _, resources := _} = mape_k_monitor:get_metrics(),
    Cluster = mape_k_monitor:cluster_metrics(),
    ?assertEqual(Nodes, lists:sort(maps:keys(Cluster))),
    [?assertMatch(#{node := N}, maps:get(N, Cluster)) || N <- Nodes],
    stop_peers(Peers).

crash_gives_node_down_within_1s(Config) ->
    [{Peer, Node, OsPid}] = start_peers(crash, 1),
    ok = await_heard(Node),
    T0 = erlang:monotonic_time(millisecond),
    _ = os:cmd("kill -9 " ++ OsPid),
    Event = await_event(node_down, Node, 5000),
    Took = erlang:monotonic_time(millisecond) - T0,
    ct:pal("node_down after ~b ms: ~p", [Took, Event]),
    ?assert(Took =< 1000),
    ?assertNot(lists:member(Node, nodes())),
    catch peer:stop(Peer),
    Config.

hang_gives_node_suspected_within_3s(Config) ->
    [{Peer, Node, OsPid}] = start_peers(hang, 1),
    ok = await_heard(Node),
    %% Let the detector learn the peer's rhythm for a moment, as in production.
    timer:sleep(2000),
    T0 = erlang:monotonic_time(millisecond),
    _ = os:cmd("kill -STOP " ++ OsPid),
    try
        #{detail := #{phi := Phi}} = await_event(node_suspected, Node, 10000),
        Took = erlang:monotonic_time(millisecond) - T0,
        StillListed = lists:member(Node, nodes()),
        ct:pal("node_suspected after ~b ms (phi ~.2f), still in nodes(): ~p", [Took, Phi, StillListed]),
        ?assert(Took =< 3000),
        ?assert(StillListed),
        ?assertEqual(suspected, maps:get(Node, mape_k_monitor:node_status())),
        ?assert(Phi >= 8),
        %% Suspected, but no partition: one hung node of two is not more than half.
        ?assertMatch(#{unresponsive := [Node]}, mape_k_monitor:partition_status())
    after
        _ = os:cmd("kill -CONT " ++ OsPid)
    end,
    #{detail := #{suspected_for_ms := For}} = await_event(node_recovered, Node, 5000),
    ct:pal("node_recovered after ~b ms suspected", [For]),
    ?assertEqual(up, maps:get(Node, mape_k_monitor:node_status())),
    ?assert(lists:member(Node, nodes())),
    catch peer:stop(Peer),
    Config.

stopped_monitor_is_not_a_hang(Config) ->
    %% Stopping the monitor on a node that stays up (an upgrade, an operator) silences its
    %% heartbeats on purpose: its peers drop its detector rather than suspect it.
    [{Peer, Node, _}] = start_peers(quiet, 1),
    ok = await_heard(Node),
    ok = erpc:call(Node, application, stop, [autonomic_monitor]),
    ok = autonomic_ct:wait_until(fun() -> not maps:is_key(Node, mape_k_heartbeat:peers()) end, 2000),
    timer:sleep(2000),
    ?assertEqual(nothing, receive {autonomic_event, #{type := node_suspected}} = M -> M after 0 -> nothing end),
    ?assertEqual(up, maps:get(Node, mape_k_monitor:node_status())),
    %% Started again, it is heard again.
    {ok, _} = erpc:call(Node, application, ensure_all_started, [autonomic_monitor]),
    ok = await_heard(Node),
    catch peer:stop(Peer),
    Config.

%% A peer whose heartbeat process runs but never sends (hung before its first heartbeat)
%% connects to this node: it must be suspected like any silent peer, although no heartbeat ever
%% started its detector. The peer is prepared over stdio before it connects.
silent_from_the_first_moment_is_suspected(Config) ->
    Env = [{autonomic_monitor, metrics_port, 0}],
    {Peer, Node} = autonomic_ct:start_peer(silent, #{apps => [autonomic_monitor], env => Env, connect => false}),
    ok = peer:call(Peer, sys, suspend, [mape_k_heartbeat]),
    T0 = erlang:monotonic_time(millisecond),
    true = peer:call(Peer, net_kernel, connect_node, [node()]),
    #{detail := #{phi := Phi}} = await_event(node_suspected, Node, 10000),
    Took = erlang:monotonic_time(millisecond) - T0,
    ct:pal("silent peer suspected ~b ms after connecting (phi ~.2f)", [Took, Phi]),
    ?assert(Took =< 3000),
    ?assertMatch(#{received := 0, suspected := true}, maps:get(Node, mape_k_heartbeat:peers())),
    ok = peer:call(Peer, sys, resume, [mape_k_heartbeat]),
    _ = await_event(node_recovered, Node, 5000),
    catch peer:stop(Peer),
    Config.

paused_observer_blames_no_one(Config) ->
    %% A node that was itself stopped for 2 s finds, when it resumes, everyone's heartbeats late:
    %% the others rightly suspected it, but it must not suspect them for its own pause.
    [{PeerA, A, OsPidA}, {PeerB, B, _}] = start_peers(pause, 2),
    ok = mape_k_monitor:subscribe(cluster),
    ok = autonomic_ct:await_members(A, 1),
    [ok = autonomic_ct:wait_until(fun() -> heard_all(N, [node(), A, B]) end, 10000) || N <- [node(), A, B]],
    timer:sleep(1000),
    Rounds = 3,
    [begin
         _ = os:cmd("kill -STOP " ++ OsPidA),
         timer:sleep(2000),
         _ = os:cmd("kill -CONT " ++ OsPidA),
         _ = await_event(node_recovered, A, 5000),
         timer:sleep(1500)
     end || _ <- lists:seq(1, Rounds)],
    Suspicions = [{N, P} || #{node := N, detail := #{peer := P}} <- flush_events(node_suspected)],
    ct:pal("suspicions: ~p", [Suspicions]),
    %% This node and B suspected A each round; A suspected no one.
    ?assertEqual([], [S || {N, _} = S <- Suspicions, N =:= A]),
    ?assertEqual(Rounds, length([S || {N, P} = S <- Suspicions, N =:= B, P =:= A])),
    catch peer:stop(PeerA),
    catch peer:stop(PeerB),
    Config.

no_false_suspicion_under_load(Config) ->
    Peers = start_peers(calm, 4),
    Nodes = [node() | [N || {_, N, _} <- Peers]],
    ok = mape_k_monitor:subscribe(cluster),
    [ok = autonomic_ct:wait_until(fun() -> heard_all(N, Nodes) end, 10000) || N <- Nodes],
    Before = received(Nodes),
    %% Keep one core busy for the whole minute.
    YesPid = string:trim(os:cmd("yes > /dev/null 2>&1 & echo $!")),
    ct:pal("busy loop: yes, os pid ~s; observing ~p for 60 s", [YesPid, Nodes]),
    try
        timer:sleep(60000)
    after
        _ = os:cmd("kill " ++ YesPid)
    end,
    Suspected = flush_events(node_suspected),
    After = received(Nodes),
    ct:pal("node_suspected events: ~p", [Suspected]),
    ?assertEqual([], Suspected),
    %% Not vacuous: every node kept hearing every other, about every 200 ms (300 in 60 s).
    Counts = [{N, P, maps:get({N, P}, After) - maps:get({N, P}, Before, 0)} || {N, P} <- maps:keys(After)],
    ct:pal("heartbeats received per pair in 60 s: ~p", [Counts]),
    ?assertEqual(length(Nodes) * (length(Nodes) - 1), length(Counts)),
    [?assert(C >= 270) || {_, _, C} <- Counts],
    stop_peers(Peers),
    Config.

%%% Helpers

start_peers(Prefix, N) ->
    Env = [{autonomic_monitor, metrics_port, 0}],
    Self = self(),
    Pids = [spawn_link(fun() ->
                           {Peer, Node} = autonomic_ct:start_peer(Prefix, #{apps => [autonomic_monitor], env => Env}),
                           Self ! {started, self(), {Peer, Node, erpc:call(Node, os, getpid, [])}}
                       end) || _ <- lists:seq(1, N)],
    Peers = [receive {started, P, Started} -> Started after 60000 -> ct:fail(peer_start_timeout) end || P <- Pids],
    %% Unlink so the peer controllers survive the helpers that started them.
    [unlink(P) || P <- Pids],
    Peers.

stop_peers(Peers) ->
    [catch peer:stop(P) || {P, _, _} <- Peers],
    ok.

await_heard(Node) ->
    autonomic_ct:wait_until(fun() -> maps:is_key(Node, mape_k_heartbeat:peers()) end, 10000).

heard_all(Node, Nodes) ->
    Peers = erpc:call(Node, mape_k_heartbeat, peers, []),
    lists:all(fun(N) -> maps:is_key(N, Peers) end, Nodes -- [Node]).

received(Nodes) ->
    maps:from_list([{{N, P}, R} || N <- Nodes, {P, #{received := R}} <- maps:to_list(erpc:call(N, mape_k_heartbeat, peers, []))]).

await_event(Type, Peer, Timeout) ->
    Me = node(),
    receive
        {autonomic_event, #{type := Type, node := Me, detail := #{peer := Peer}} = E} -> E
    after Timeout ->
        ct:fail({no_event, Type, Peer})
    end.

flush_events(Type) ->
    receive
        {autonomic_event, #{type := Type} = E} -> [E | flush_events(Type)]
    after 0 ->
        []
    end.
