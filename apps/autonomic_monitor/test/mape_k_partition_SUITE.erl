%%% @doc Network partitions between real nodes. A split is made for real: each side's nodes
%%% allow connections only from their own side (`net_kernel:allow/1') and drop the connections
%%% to the other side (`erlang:disconnect_node/1'), so the distribution cannot reconnect across;
%%% nodes that are cut from the test node are driven through their stdio control channel.
%%% <ul>
%%%   <li>a split bridged by one node (the test node sees both sides; the sides do not see each
%%%       other): the monitors learn the far side's rows through the bridge and report two
%%%       overlapping groups;</li>
%%%   <li>a clean 3|2 split: the majority side cannot hear the other side at all, but its
%%%       host's epmd still lists those nodes, so they are cut off (alive), not dead; the minority
%%%       side sees more than half of the nodes unreachable (the seed's rule);</li>
%%%   <li>both heal: `network_partition_healed' and one group again.</li>
%%% </ul>
%%% The peers run with `prevent_overlapping_partitions' off, so `global' does not turn the
%%% partial splits made here into other ones while the test watches.
-module(mape_k_partition_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([split_bridged_by_one_node/1, clean_split_majority_and_minority/1]).

suite() -> [{timetrap, {minutes, 3}}].

all() -> [split_bridged_by_one_node, clean_split_majority_and_minority].

init_per_suite(Config) ->
    ok = autonomic_ct:ensure_distributed(),
    ok = application:set_env(autonomic_monitor, metrics_port, 0),
    {ok, _} = application:ensure_all_started(autonomic_monitor),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(autonomic_monitor).

init_per_testcase(_Case, Config) ->
    ok = mape_k_monitor:subscribe(local),
    Peers = start_peers(4),
    Nodes = lists:sort([node() | [N || {_, N} <- Peers]]),
    ok = autonomic_ct:wait_until(fun() -> mape_k_monitor:partitions() =:= [Nodes] end, 15000),
    ok = flush_partition_events(),
    [{peers, Peers}, {all, Nodes} | Config].

end_per_testcase(_Case, Config) ->
    ok = mape_k_monitor:unsubscribe(self()),
    [catch peer:stop(P) || {P, _} <- ?config(peers, Config)],
    ok.

%%% Tests

split_bridged_by_one_node(Config) ->
    [{_, N1}, {_, N2}, {_, N3}, {_, N4}] = ?config(peers, Config),
    Me = node(),
    A = [N1, N2],
    B = [N3, N4],
    [ok = erpc:call(X, net_kernel, allow, [[Me | A]]) || X <- A],
    [ok = erpc:call(Y, net_kernel, allow, [[Me | B]]) || Y <- B],
    [true = erpc:call(X, erlang, disconnect_node, [Y]) || X <- A, Y <- B],
    Expected = lists:sort([lists:sort([Me | A]), lists:sort([Me | B])]),
    #{detail := Detail} = await(network_partition, 15000),
    ct:pal("network_partition: ~p", [Detail]),
    ?assertEqual(Expected, maps:get(groups, Detail)),
    ?assertEqual(Expected, mape_k_monitor:partitions()),
    %% The bridge passes each side's rows to the other: both sides agree.
    ok = autonomic_ct:wait_until(fun() -> erpc:call(N1, mape_k_monitor, partitions, []) =:= Expected end, 10000),
    ok = autonomic_ct:wait_until(fun() -> erpc:call(N3, mape_k_monitor, partitions, []) =:= Expected end, 10000),
    #{cut_off := CutOff} = erpc:call(N1, mape_k_monitor, partition_status, []),
    ?assertEqual([], CutOff),
    %% Heal.
    [ok = erpc:call(X, net_kernel, allow, [B]) || X <- A],
    [ok = erpc:call(Y, net_kernel, allow, [A]) || Y <- B],
    [pong = erpc:call(X, net_adm, ping, [Y]) || X <- A, Y <- B],
    #{detail := #{groups := Healed}} = await(network_partition_healed, 15000),
    ?assertEqual([?config(all, Config)], Healed),
    ?assertEqual([?config(all, Config)], mape_k_monitor:partitions()).

clean_split_majority_and_minority(Config) ->
    [{_, N1}, {_, N2}, {P3, N3}, {P4, N4}] = ?config(peers, Config),
    Me = node(),
    Majority = lists:sort([Me, N1, N2]),
    Minority = lists:sort([N3, N4]),
    %% From now on N3 and N4 are driven over stdio only.
    [ok = peer:call(P, net_kernel, allow, [Minority]) || P <- [P3, P4]],
    [true = peer:call(P, erlang, disconnect_node, [X]) || P <- [P3, P4], X <- Majority],
    Expected = lists:sort([Majority, Minority]),
    #{detail := Detail} = await(network_partition, 15000),
    ct:pal("network_partition on the majority side: ~p", [Detail]),
    ?assertMatch(#{groups := Expected, cut_off := Minority, majority_unreachable := []}, Detail),
    ?assertEqual(Expected, mape_k_monitor:partitions()),
    ?assertEqual(false, lists:member(N3, nodes())),
    %% The minority side: more than half of the nodes unreachable from each of its nodes.
    ok = wait_until(fun() -> peer:call(P3, mape_k_monitor, partitions, []) =:= Expected end,
                    fun() -> peer:call(P3, mape_k_monitor, partition_status, []) end, 15000),
    MinorityView = peer:call(P3, mape_k_monitor, partition_status, []),
    ct:pal("minority view: ~p", [MinorityView]),
    ?assertMatch(#{partitioned := true, cut_off := Majority, majority_unreachable := Minority}, MinorityView),
    %% Heal.
    [ok = peer:call(P, net_kernel, allow, [Majority]) || P <- [P3, P4]],
    [pong = peer:call(P, net_adm, ping, [X]) || P <- [P3, P4], X <- Majority],
    #{detail := #{groups := Healed}} = await(network_partition_healed, 15000),
    ?assertEqual([?config(all, Config)], Healed),
    ok = autonomic_ct:wait_until(fun() -> peer:call(P3, mape_k_monitor, partitions, []) =:= [?config(all, Config)] end, 15000).

%%% Helpers

%% As autonomic_ct:wait_until/2, and on timeout fails with what `Show' says.
wait_until(Fun, Show, Timeout) ->
    try autonomic_ct:wait_until(Fun, Timeout)
    catch error:timeout -> ct:fail({timeout, Show()})
    end.

start_peers(N) ->
    Opts = #{apps => [autonomic_monitor], env => [{autonomic_monitor, metrics_port, 0}],
             args => ["-kernel", "prevent_overlapping_partitions", "false"]},
    Self = self(),
    Pids = [spawn(fun() -> Self ! {started, self(), autonomic_ct:start_peer(split, Opts)} end) || _ <- lists:seq(1, N)],
    [receive {started, P, Started} -> Started after 60000 -> ct:fail(peer_start_timeout) end || P <- Pids].

await(Type, Timeout) ->
    Me = node(),
    receive
        {autonomic_event, #{type := Type, node := Me} = E} -> E
    after Timeout ->
        ct:fail({no_event, Type, mape_k_monitor:partition_status()})
    end.

flush_partition_events() ->
    receive
        {autonomic_event, #{type := T}} when T =:= network_partition; T =:= network_partition_healed -> flush_partition_events()
    after 0 ->
        ok
    end.
