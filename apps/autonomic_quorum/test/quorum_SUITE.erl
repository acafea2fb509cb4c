%%% @doc The quorum manager on 5 real peer nodes, each running autonomic, autonomic_monitor and
%%% autonomic_quorum with its own data directory. The test node drives them only through their
%%% stdio control channels and never joins their distribution.
%%%
%%% Throughout every test an invariant checker ({@link quorum_ct}) polls every node every 20 ms
%%% and fails the test at once if two groups that cannot see each other both report quorum, if
%%% both sides of a declared split report quorum, or if two nodes hold different members for one
%%% epoch.
%%%
%%% Faults are real: `kill -9' of a node's OS process; partitions made with `net_kernel:allow/1'
%%% on each side (no reconnection across) and `erlang:disconnect_node/1'. The peers run `global'
%%% with OTP 25's default `prevent_overlapping_partitions = true'. With it, `global' answers the
%%% loss of a single link by isolating both of its ends, so cutting the cross links of a split one
%%% by one (each cut is an overlapping partition for an instant) shatters the cluster into single
%%% nodes: {@link overlapping_cuts_shatter_safely} shows that, and that nobody claims quorum then.
%%% A real split takes every cross link down at once and no report crosses it; the partition test
%%% reproduces that by holding each node's `global_name_server' (`sys:suspend/1') while it cuts.
-module(quorum_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_testcase/2, end_per_testcase/2]).
-export([bad_input_is_refused/1, kill_one_reconfigures_and_rejoins/1, kill_three_survivors_refuse/1,
         partition_two_three_and_heal/1, concurrent_proposals_exactly_one_commits/1,
         overlapping_cuts_shatter_safely/1, hang_the_leader/1]).

-define(NODES, 5).
-define(CHECK_INTERVAL_MS, 20).

suite() -> [{timetrap, {minutes, 3}}].

all() ->
    [bad_input_is_refused, kill_one_reconfigures_and_rejoins, kill_three_survivors_refuse,
     partition_two_three_and_heal, concurrent_proposals_exactly_one_commits, overlapping_cuts_shatter_safely,
     hang_the_leader].

init_per_testcase(Case, Config) ->
    Dir = filename:join(?config(priv_dir, Config), atom_to_list(Case)),
    Cluster = quorum_ct:start_cluster(?NODES, #{dir => Dir}),
    ok = await_converged(Cluster, 10000),
    Checker = quorum_ct:checker_start(Cluster, ?CHECK_INTERVAL_MS),
    [{cluster, Cluster}, {checker, Checker} | Config].

end_per_testcase(_Case, Config) ->
    Checker = ?config(checker, Config),
    Result = case is_process_alive(Checker) of
        true ->
            #{rounds := Rounds, answers := Answers} = quorum_ct:checker_stop(Checker),
            ct:log("invariant checker: ~b rounds, ~b statuses checked", [Rounds, Answers]),
            case Rounds > 0 of
                true -> ok;
                false -> {fail, {checker_barely_ran, Rounds}}
            end;
        false ->
            ok
    end,
    ok = quorum_ct:stop_all(),
    Result.

%%% Tests

%% Bad input returns {error, Reason} and changes nothing; good input still works afterwards.
bad_input_is_refused(Config) ->
    [Q1 | _] = Cluster = ?config(cluster, Config),
    All = nodes_of(Cluster),
    [_, _, N3, N4, N5] = All,
    Before = quorum_ct:statuses(Cluster),
    Propose = fun(Add, Remove) -> quorum_ct:call(Q1, quorum_manager, propose_membership_change, [Add, Remove]) end,
    Cases = [
        {not_a_list, [], {not_a_list, not_a_list}},
        {[], N5, {not_a_list, N5}},
        {[], [], empty_change},
        {[], ['nobody@nowhere'], {unknown_node, 'nobody@nowhere'}},
        {['ghost@nowhere'], [], {unknown_node, 'ghost@nowhere'}},
        {[{'ghost@nowhere', 0}], [], {invalid_weight, 'ghost@nowhere', 0}},
        {[{'ghost@nowhere', -2}], [], {invalid_weight, 'ghost@nowhere', -2}},
        {[{'ghost@nowhere', 1.5}], [], {invalid_weight, 'ghost@nowhere', 1.5}},
        {[{'ghost@nowhere', two}], [], {invalid_weight, 'ghost@nowhere', two}},
        {[42], [], {invalid_node, 42}},
        {[], ["n@h"], {invalid_node, "n@h"}},
        {[], [not_a_node_name], {invalid_node, not_a_node_name}},
        {[N5], [], {already_member, N5}},
        {[], [N5, N5], {duplicate_node, N5}},
        {[N5], [N5], {duplicate_node, N5}},
        {[], All, no_members_left},
        {[], [N3, N4, N5], {unsafe_removal, #{remaining_weight => 2, total_weight => 5}}}
    ],
    [?assertEqual({error, Reason}, Propose(Add, Remove), {Add, Remove}) || {Add, Remove, Reason} <- Cases],
    %% Nothing changed anywhere.
    ?assertEqual(Before, quorum_ct:statuses(Cluster)),
    %% Good input still commits: N5 out, then back with weight 2.
    ?assertEqual({ok, 1}, Propose([], [N5])),
    ok = await_members(Cluster, All -- [N5], 1, 5000),
    ?assertEqual({error, {already_member, N4}}, Propose([{N4, 2}], [])),
    ?assertEqual({ok, 2}, Propose([{N5, 2}], [])),
    ok = await_members(Cluster, All, 2, 5000),
    #{weights := Weights} = quorum_ct:call(Q1, quorum_manager, info, []),
    ?assertEqual(2, maps:get(N5, Weights)),
    ?assertMatch(#{quorum_size := 4}, quorum_ct:status(Q1)),
    %% Options: anything but a known reason is refused and changes nothing.
    Propose3 = fun(Add, Remove, Opts) ->
        quorum_ct:call(Q1, quorum_manager, propose_membership_change, [Add, Remove, Opts]) end,
    Before3 = quorum_ct:statuses(Cluster),
    ?assertEqual({error, {invalid_option, reason, crash}}, Propose3([], [N4], #{reason => crash})),
    ?assertEqual({error, {invalid_option, force, true}}, Propose3([], [N4], #{force => true})),
    ?assertEqual({error, {invalid_option, options, []}}, Propose3([], [N4], [])),
    ?assertEqual(Before3, quorum_ct:statuses(Cluster)),
    %% A removal for node loss (what the self-healing loop proposes for a lost node) puts the node
    %% on standby: it is up, so the failure handler restores it by itself, with its weight.
    ?assertEqual({ok, 3}, Propose3([], [N5], #{reason => node_loss})),
    ok = await_members(Cluster, All, 4, 10000),
    #{weights := Weights4} = quorum_ct:call(Q1, quorum_manager, info, []),
    ?assertEqual(2, maps:get(N5, Weights4)).

%% Kill the leader: within 2 s of the kill (so within 2 s of its detection) the 4 survivors commit
%% a 4-member configuration and elect a new leader; the node restarts with the same name and data
%% directory, comes back with the membership it had, and rejoins.
kill_one_reconfigures_and_rejoins(Config) ->
    Cluster = ?config(cluster, Config),
    %% First a change, so that every node has an epoch on disk: one member out and back in.
    #{leader := Leader0} = quorum_ct:status(hd(Cluster)),
    [Other | _] = [Q || #{node := N} = Q <- Cluster, N =/= Leader0],
    {ok, _} = quorum_ct:call(Other, quorum_manager, propose_membership_change, [[], [maps:get(node, Other)]]),
    {ok, _} = quorum_ct:call(hd(Cluster -- [Other]), quorum_manager, propose_membership_change, [[maps:get(node, Other)], []]),
    ok = await_members(Cluster, nodes_of(Cluster), 2, 5000),
    ok = await_converged(Cluster, 5000),
    #{epoch := E0, leader := Leader} = quorum_ct:status(hd(Cluster)),
    {[Victim], Survivors} = lists:partition(fun(#{node := N}) -> N =:= Leader end, Cluster),
    SurvivorNodes = nodes_of(Survivors),
    ok = quorum_ct:checker_set_peer(?config(checker, Config), Leader, undefined),
    T0 = quorum_ct:now_ms(),
    ok = quorum_ct:kill(Victim),
    ok = await_members(Survivors, SurvivorNodes, E0 + 1, 2000),
    Reconfigured = quorum_ct:now_ms() - T0,
    ct:pal("kill -9 of the leader ~p: 4-member quorum committed on every survivor after ~b ms", [Leader, Reconfigured]),
    ?assert(Reconfigured =< 2000),
    NewLeader = await_leader(Survivors, 5000),
    ?assertNotEqual(Leader, NewLeader),
    ?assert(lists:member(NewLeader, SurvivorNodes)),
    %% Restart with the same name and data directory: the node comes back with the membership it
    %% had when it was killed (read from its state file before the manager starts), then
    %% connects by itself, learns the new epoch and is restored.
    Restarted = quorum_ct:boot_node(Victim),
    Path = quorum_ct:call(Restarted, quorum_store, path, [maps:get(dir, Victim) ++ "/quorum"]),
    {ok, #{config := Saved}} = quorum_ct:call(Restarted, quorum_store, load, [Path]),
    ct:pal("restarted node's saved configuration: ~p", [Saved]),
    ?assertMatch(#{epoch := E0}, Saved),
    ?assertEqual(nodes_of(Cluster), lists:sort(maps:keys(maps:get(members, Saved)))),
    T1 = quorum_ct:now_ms(),
    ok = quorum_ct:start_apps(Restarted),
    ok = quorum_ct:checker_set_peer(?config(checker, Config), Leader, maps:get(peer, Restarted)),
    All = [Restarted | Survivors],
    ok = await_members(All, nodes_of(Cluster), E0 + 2, 10000),
    ct:pal("restarted node rejoined ~b ms after its applications started", [quorum_ct:now_ms() - T1]),
    ok = await_converged(All, 5000),
    ?assertEqual(NewLeader, await_leader(All, 5000)).

%% Kill 3 of 5 at once: the 2 survivors lose quorum, are fenced (the governor refuses and keeps
%% no state), cannot commit anything, and act again once the others are back.
kill_three_survivors_refuse(Config) ->
    Checker = ?config(checker, Config),
    [S1, S2 | Doomed] = Cluster = ?config(cluster, Config),
    Survivors = [S1, S2],
    #{epoch := E0} = quorum_ct:status(S1),
    [ok = quorum_ct:checker_set_peer(Checker, N, undefined) || N <- nodes_of(Doomed)],
    Pids = [quorum_ct:os_pid(Q) || Q <- Doomed],
    _ = os:cmd(lists:flatten(["kill -9" | [[" ", P] || P <- Pids]])),
    ok = quorum_ct:wait_until(
           fun() -> lists:all(fun(Q) -> minority(quorum_ct:status(Q)) end, Survivors) end,
           fun() -> quorum_ct:statuses(Survivors) end, 5000),
    %% Held past the grace period: nothing can be committed, they stay fenced.
    timer:sleep(1500),
    Tenant = <<"quorum-suite">>,
    [begin
         Status = quorum_ct:status(Q),
         ?assertMatch(#{have_quorum := false, mode := minority, leader := undefined, epoch := E0}, Status),
         ?assertEqual(nodes_of(Cluster), maps:get(members, Status)),
         ?assert(quorum_ct:call(Q, autonomic, fenced, [])),
         ?assertEqual({ok, refuse, {shed, 100}}, quorum_ct:call(Q, autonomic, transition, [Tenant, {signal, cpu, 50}])),
         ?assertEqual({error, not_found}, quorum_ct:call(Q, autonomic, governor_info, [Tenant]))
     end || Q <- Survivors],
    ?assertEqual({error, no_quorum},
                 quorum_ct:call(S1, quorum_manager, propose_membership_change, [[], [maps:get(node, hd(Doomed))]])),
    %% The three come back (and connect by themselves): quorum again everywhere, and the governor
    %% acts.
    Back = quorum_ct:pmap(fun(Q) -> quorum_ct:start_node(Q, []) end, Doomed),
    [ok = quorum_ct:checker_set_peer(Checker, N, P) || #{node := N, peer := P} <- Back],
    All = Survivors ++ Back,
    ok = await_members(All, nodes_of(Cluster), {at_least, E0}, 10000),
    ok = await_converged(All, 10000),
    [?assertEqual({ok, stable, none}, quorum_ct:call(Q, autonomic, transition, [Tenant, {signal, cpu, 50}])) || Q <- Survivors].

%% Partition 2 | 3 (the leader on the side of 2): the 2 enter minority and are fenced; the 3 keep
%% quorum throughout, elect a leader and remove the 2 after the grace period. Heal (the network
%% allows the connections again; nobody reconnects the nodes but themselves): within 5 s every
%% node holds one membership of all 5 at a higher epoch.
partition_two_three_and_heal(Config) ->
    Cluster = ?config(cluster, Config),
    #{epoch := E0, leader := Leader} = quorum_ct:status(hd(Cluster)),
    {[LeaderQ], Others} = lists:partition(fun(#{node := N}) -> N =:= Leader end, Cluster),
    [Buddy | Majority] = Others,
    Minority = [LeaderQ, Buddy],
    MinNodes = nodes_of(Minority),
    MajNodes = nodes_of(Majority),
    ok = split(Minority, Majority),
    ok = quorum_ct:checker_sides(?config(checker, Config), [MinNodes, MajNodes]),
    ct:pal("split: ~p | ~p", [MinNodes, MajNodes]),
    ok = quorum_ct:wait_until(fun() -> lists:all(fun(Q) -> minority(quorum_ct:status(Q)) end, Minority) end,
                              fun() -> quorum_ct:statuses(Minority) end, 2000),
    [?assertEqual({ok, refuse, {shed, 100}}, quorum_ct:call(Q, autonomic, transition, [<<"t">>, {signal, cpu, 50}]))
     || Q <- Minority],
    %% The majority never lost quorum (the checker saw every status); it removes the two.
    ok = await_members(Majority, MajNodes, {at_least, E0 + 1}, 5000),
    #{epoch := ESplit} = quorum_ct:status(hd(Majority)),
    NewLeader = await_leader(Majority, 5000),
    ?assert(lists:member(NewLeader, MajNodes)),
    [?assertEqual({ok, stable, none}, quorum_ct:call(Q, autonomic, transition, [<<"t">>, {signal, cpu, 50}]))
     || Q <- Majority],
    [?assertMatch(#{epoch := E0, have_quorum := false, mode := minority}, quorum_ct:status(Q)) || Q <- Minority],
    %% Heal: the network lets the sides connect again; the managers reconnect by themselves.
    ok = quorum_ct:checker_sides(?config(checker, Config), undefined),
    T0 = quorum_ct:now_ms(),
    [ok = quorum_ct:call(Q, net_kernel, allow, [nodes_of(Cluster)]) || Q <- Cluster],
    ok = await_members(Cluster, nodes_of(Cluster), {at_least, ESplit + 1}, 5000),
    ok = await_converged(Cluster, 5000 - (quorum_ct:now_ms() - T0)),
    Healed = quorum_ct:now_ms() - T0,
    #{epoch := EHealed} = quorum_ct:status(hd(Cluster)),
    ct:pal("healed: one membership of 5 at epoch ~b (split at ~b, before ~b) after ~b ms", [EHealed, ESplit, E0, Healed]),
    ?assert(Healed =< 5000),
    [?assertEqual({ok, stable, none}, quorum_ct:call(Q, autonomic, transition, [<<"t2">>, {signal, cpu, 50}]))
     || Q <- Minority].

%% Two nodes propose different changes at the same instant, again and again: every time exactly
%% one commits, the other gets change_in_progress, and every node ends on the winner's membership.
concurrent_proposals_exactly_one_commits(Config) ->
    Cluster = ?config(cluster, Config),
    Rounds = 40,
    Results = [race(Round, Cluster) || Round <- lists:seq(1, Rounds)],
    ct:pal("~b races: ~p", [Rounds, lists:foldl(fun(W, Acc) -> maps:update_with(W, fun(C) -> C + 1 end, 1, Acc) end, #{}, Results)]),
    ?assertEqual(Rounds, length(Results)).

race(Round, Cluster) ->
    %% Proposers and victims rotate; the two proposals remove different nodes.
    [A, B, X, Y | _] = rotate(Round, Cluster),
    #{epoch := E0} = quorum_ct:status(A),
    Start = erlang:system_time(microsecond) + 50000,
    Go = fun(Q, Victim) -> quorum_ct:call(Q, quorum_ct, propose_at, [Start, [], [Victim]]) end,
    Self = self(),
    _ = [spawn_link(fun() -> Self ! {Tag, Go(Q, maps:get(node, V))} end) || {Tag, Q, V} <- [{a, A, X}, {b, B, Y}]],
    RA = receive {a, R1} -> R1 after 15000 -> ct:fail(no_answer_a) end,
    RB = receive {b, R2} -> R2 after 15000 -> ct:fail(no_answer_b) end,
    E1 = E0 + 1,
    {Winner, Removed} = case {RA, RB} of
        {{ok, E1}, {error, change_in_progress}} -> {a, X};
        {{error, change_in_progress}, {ok, E1}} -> {b, Y};
        _ -> ct:fail({not_exactly_one_commit, Round, RA, RB})
    end,
    Remaining = nodes_of(Cluster) -- [maps:get(node, Removed)],
    ok = await_members(Cluster, Remaining, E1, 5000),
    %% Put the removed node back for the next round.
    ?assertEqual({ok, E1 + 1}, quorum_ct:call(A, quorum_manager, propose_membership_change, [[maps:get(node, Removed)], []])),
    ok = await_members(Cluster, nodes_of(Cluster), E1 + 1, 5000),
    ok = await_converged(Cluster, 5000),
    Winner.

rotate(K, L) ->
    I = K rem length(L),
    {H, T} = lists:split(I, L),
    T ++ H.

%% Cutting the cross links of a 2 | 3 split one by one, with global's default: every cut is an
%% overlapping partition for a moment, and global isolates both ends of each, so the cluster
%% falls apart into single nodes. The managers then reconnect what the network still allows: the
%% 3 find each other, regain quorum and remove the 2, which stay in minority. The checker watches
%% all of it. When the network allows everything again, the nodes reconnect and converge.
overlapping_cuts_shatter_safely(Config) ->
    Cluster = ?config(cluster, Config),
    Checker = ?config(checker, Config),
    [A, B | Rest] = Cluster,
    [ok = quorum_ct:call(Q, net_kernel, allow, [nodes_of([A, B])]) || Q <- [A, B]],
    [ok = quorum_ct:call(Q, net_kernel, allow, [nodes_of(Rest)]) || Q <- Rest],
    [_ = quorum_ct:call(Q, erlang, disconnect_node, [N]) || Q <- [A, B], N <- nodes_of(Rest)],
    timer:sleep(300),
    ct:pal("right after the cuts: ~p", [[{N, quorum_ct:call(Q, erlang, nodes, [])} || #{node := N} = Q <- Cluster]]),
    ok = quorum_ct:checker_sides(Checker, [nodes_of([A, B]), nodes_of(Rest)]),
    ok = await_members(Rest, nodes_of(Rest), {at_least, 1}, 5000),
    [?assertMatch(#{have_quorum := false, mode := minority}, quorum_ct:status(Q)) || Q <- [A, B]],
    ok = quorum_ct:checker_sides(Checker, undefined),
    T0 = quorum_ct:now_ms(),
    [ok = quorum_ct:call(Q, net_kernel, allow, [nodes_of(Cluster)]) || Q <- Cluster],
    ok = await_members(Cluster, nodes_of(Cluster), {at_least, 2}, 10000),
    ok = await_converged(Cluster, 10000),
    ct:pal("converged ~b ms after the network allowed every connection again", [quorum_ct:now_ms() - T0]).

%% Hang the leader (kill -STOP): it keeps its connections, and so global's name, for up to
%% net_ticktime, but falls silent. The monitor suspects it within a second, the others stop
%% counting it, and after the grace period the node the leader rule picks removes it although
%% global still names it. Resumed (kill -CONT), it learns it is out, gives the name up, and is
%% restored; one leader again.
hang_the_leader(Config) ->
    Cluster = ?config(cluster, Config),
    Checker = ?config(checker, Config),
    #{epoch := E0, leader := Leader} = quorum_ct:status(hd(Cluster)),
    {[Hung], Others} = lists:partition(fun(#{node := N}) -> N =:= Leader end, Cluster),
    OsPid = quorum_ct:os_pid(Hung),
    %% The monitors must have heard every peer for a while: a peer never heard from has no
    %% detector, and is never suspected.
    ok = quorum_ct:wait_until(
           fun() ->
               lists:all(fun(#{node := Me} = Q) ->
                                 Heard = quorum_ct:call(Q, mape_k_heartbeat, peers, []),
                                 lists:all(fun(N) -> maps:get(received, maps:get(N, Heard, #{}), 0) >= 5 end,
                                           nodes_of(Cluster) -- [Me])
                         end, Cluster)
           end,
           fun() -> [{N, quorum_ct:call(Q, mape_k_heartbeat, peers, [])} || #{node := N} = Q <- Cluster] end, 10000),
    %% A stopped node answers nothing; the checker polls the others meanwhile.
    ok = quorum_ct:checker_set_peer(Checker, Leader, undefined),
    T0 = quorum_ct:now_ms(),
    _ = os:cmd("kill -STOP " ++ OsPid),
    try
        ok = await_members(Others, nodes_of(Others), {at_least, E0 + 1}, 5000),
        ct:pal("hung leader ~p removed ~b ms after kill -STOP", [Leader, quorum_ct:now_ms() - T0]),
        %% Still connected: the distribution has not noticed the hang.
        ?assert(lists:member(Leader, quorum_ct:call(hd(Others), erlang, nodes, [])))
    after
        _ = os:cmd("kill -CONT " ++ OsPid)
    end,
    ok = quorum_ct:checker_set_peer(Checker, Leader, maps:get(peer, Hung)),
    ok = await_members(Cluster, nodes_of(Cluster), {at_least, E0 + 2}, 10000),
    ok = await_converged(Cluster, 10000),
    ?assertNotEqual(Leader, await_leader(Cluster, 5000)).

%%% Helpers

%% A clean split, as a real network failure presents it to global: every cross link goes down
%% while no node's global_name_server runs, so no "lost connection" report crosses the split.
split(SideA, SideB) ->
    All = SideA ++ SideB,
    [ok = quorum_ct:call(Q, sys, suspend, [global_name_server]) || Q <- All],
    try
        [ok = quorum_ct:call(Q, net_kernel, allow, [nodes_of(SideA)]) || Q <- SideA],
        [ok = quorum_ct:call(Q, net_kernel, allow, [nodes_of(SideB)]) || Q <- SideB],
        [true = quorum_ct:call(Q, erlang, disconnect_node, [N]) || Q <- SideA, N <- nodes_of(SideB)],
        ok
    after
        [ok = quorum_ct:call(Q, sys, resume, [global_name_server]) || Q <- All]
    end.

nodes_of(Cluster) ->
    lists:sort([N || #{node := N} <- Cluster]).

minority(#{have_quorum := false, mode := minority}) -> true;
minority(_) -> false.

%% Every node of `Cluster' holds `Members' at `Epoch' (or `{at_least, Epoch}'), all at one epoch;
%% the members among them have quorum, the others do not.
await_members(Cluster, Members, Epoch, Timeout) ->
    Want = lists:sort(Members),
    EpochOk = case Epoch of
        {at_least, Min} -> fun(E) -> E >= Min end;
        Exact -> fun(E) -> E =:= Exact end
    end,
    quorum_ct:wait_until(
      fun() ->
          Statuses = quorum_ct:statuses(Cluster),
          length(lists:usort([E || {_, #{epoch := E}} <- Statuses])) =:= 1 andalso
              lists:all(fun({N, #{epoch := E, members := M, have_quorum := Q}}) ->
                                EpochOk(E) andalso M =:= Want andalso Q =:= lists:member(N, Want)
                        end, Statuses)
      end,
      fun() -> {want, Epoch, Want, quorum_ct:statuses(Cluster)} end, max(0, Timeout)).

%% Every node of `Cluster' has quorum in normal mode, at one epoch, and names one leader among them.
await_converged(Cluster, Timeout) ->
    Nodes = nodes_of(Cluster),
    quorum_ct:wait_until(
      fun() ->
          Statuses = [S || {_, S} <- quorum_ct:statuses(Cluster)],
          Views = lists:usort([{E, M, L} || #{epoch := E, members := M, leader := L} <- Statuses]),
          lists:all(fun(#{have_quorum := Q, mode := Mode}) -> Q andalso Mode =:= normal end, Statuses)
              andalso case Views of
                          [{_, _, L}] -> lists:member(L, Nodes);
                          _ -> false
                      end
      end,
      fun() -> {not_converged, quorum_ct:statuses(Cluster)} end, max(0, Timeout)).

%% The leader every node of `Cluster' names.
await_leader(Cluster, Timeout) ->
    ok = quorum_ct:wait_until(
           fun() ->
               case lists:usort([L || {_, #{leader := L}} <- quorum_ct:statuses(Cluster)]) of
                   [L] -> L =/= undefined;
                   _ -> false
               end
           end,
           fun() -> quorum_ct:statuses(Cluster) end, Timeout),
    {_, #{leader := Leader}} = hd(quorum_ct:statuses(Cluster)),
    Leader.
