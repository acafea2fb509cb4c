%%% @doc The event bus across real nodes: a `cluster' subscriber on one node receives events
%%% published on another; a `local' subscriber does not; unsubscribing and dying both end delivery.
-module(autonomic_events_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([cluster_subscriber_sees_remote_events/1, local_subscriber_sees_only_local/1,
         unsubscribe_and_death_end_delivery/1]).

all() -> [cluster_subscriber_sees_remote_events, local_subscriber_sees_only_local,
          unsubscribe_and_death_end_delivery].

init_per_suite(Config) ->
    ok = autonomic_ct:ensure_distributed(),
    {ok, _} = application:ensure_all_started(autonomic),
    {Peer, Node} = autonomic_ct:start_peer(events),
    [{peer, Peer}, {node, Node} | Config].

end_per_suite(Config) ->
    peer:stop(?config(peer, Config)),
    application:stop(autonomic).

cluster_subscriber_sees_remote_events(Config) ->
    Node = ?config(node, Config),
    ok = autonomic_events:subscribe(cluster),
    ok = autonomic_ct:await_members(Node, 1),
    #{at := At} = erpc:call(Node, autonomic_events, publish, [test_event, #{n => 1}]),
    receive
        {autonomic_event, #{type := test_event, node := Node, at := At, detail := #{n := 1}}} -> ok
    after 2000 -> ct:fail(no_remote_event)
    end,
    ?assertEqual(1, erpc:call(Node, autonomic_metrics, value, [autonomic_events_total, #{type => test_event}])),
    ok = autonomic_events:unsubscribe().

local_subscriber_sees_only_local(Config) ->
    Node = ?config(node, Config),
    ok = autonomic_events:subscribe(local),
    _ = erpc:call(Node, autonomic_events, publish, [remote_only, #{}]),
    _ = autonomic_events:publish(here, #{}),
    receive {autonomic_event, #{type := here}} -> ok after 2000 -> ct:fail(no_local_event) end,
    receive {autonomic_event, #{type := remote_only}} = M -> ct:fail({unexpected, M}) after 500 -> ok end,
    ok = autonomic_events:unsubscribe().

unsubscribe_and_death_end_delivery(Config) ->
    Node = ?config(node, Config),
    ok = autonomic_events:subscribe(cluster),
    ok = autonomic_events:unsubscribe(),
    ?assertEqual([], autonomic_events:subscribers()),
    _ = autonomic_events:publish(after_unsubscribe, #{}),
    receive {autonomic_event, _} = M -> ct:fail({unexpected, M}) after 300 -> ok end,
    Pid = spawn(fun() -> ok = autonomic_events:subscribe(cluster), receive stop -> ok end end),
    ok = autonomic_ct:await_members(Node, 1),
    exit(Pid, kill),
    ok = autonomic_ct:await_members(Node, 0),
    ?assertEqual({error, {bad_scope, everywhere}}, autonomic_events:subscribe(everywhere)).
