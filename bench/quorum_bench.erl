%%% @doc Quorum benchmark (`make bench', or `sh bench/run.sh quorum_bench'); not a test, nothing
%%% here asserts a time.
%%%
%%% Five real peer nodes run autonomic, autonomic_monitor and autonomic_quorum with the default
%%% settings (grace period 1 s, rejoin delay 1 s, vote timeout 1 s) and the release's scheduler
%%% flags. This node drives them over their stdio control channels only; it never joins their
%%% distribution. Times are taken from the nodes' own records (`quorum_manager:info/0': when each
%%% learned its epoch, since when it has seen a node down, in OS time), so polling adds no error.
%%% All nodes read this host's clock.
%%% <ul>
%%%   <li>Crash, 20 runs: `kill -9' of one member (in turn, so the leader too): time to detection
%%%       (first survivor to see it down), to the committed 4-member configuration (first
%%%       survivor to learn it: the proposer), and until every survivor has learned it; the vote
%%%       itself (proposal to commit, as the proposer measured it). The node is then restarted
%%%       with the same name and data directory and rejoins by itself (time from the start of its
%%%       applications to the 5-member configuration learned everywhere).</li>
%%%   <li>Partition 2 | 3, 20 runs: the majority removes the two; then the network heals (the
%%%       nodes may connect again) and nobody helps: time until the minority is back in the
%%%       view of every node (the managers reconnect by themselves), and until one membership of
%%%       all 5 is learned everywhere (convergence).</li>
%%% </ul>
-module(quorum_bench).

-export([main/0, main/1]).

-define(COOKIE, "autonomic_quorum_bench").

main() -> main(#{}).

main(Opts) ->
    Runs = maps:get(runs, Opts, 20),
    _ = os:cmd("epmd -daemon"),
    ok = logger:set_primary_config(level, error),
    Dir = filename:absname(filename:join(["bench", "out", "quorum_data_" ++ os:getpid()])),
    io:format("quorum benchmark: 5 nodes, ~b runs per fault, ~b schedulers, ~b cores~n~n",
              [Runs, erlang:system_info(schedulers_online), erlang:system_info(logical_processors_available)]),
    Cluster = start_cluster(5, Dir),
    try
        ok = await_converged(Cluster, 30000),
        {Cluster1, Crash} = crash_runs(Runs, Cluster),
        Split = partition_runs(Runs, Cluster1),
        report(Crash, Split)
    after
        [catch peer:stop(P) || P <- registry(take)],
        _ = file:del_dir_r(Dir)
    end.

%%% Crash runs

crash_runs(Runs, Cluster) ->
    lists:foldl(
      fun(I, {C, Acc}) ->
              Victim = lists:nth((I rem length(C)) + 1, C),
              Survivors = C -- [Victim],
              #{status := #{epoch := E0, leader := Leader}} = info(hd(Survivors)),
              OsPid = call(Victim, os, getpid, []),
              T0 = os:system_time(millisecond),
              _ = os:cmd("kill -9 " ++ OsPid),
              Infos = await(fun() -> [info(Q) || Q <- Survivors] end,
                            fun(Is) -> lists:all(fun(#{status := #{epoch := E, members := M}}) ->
                                                         E =:= E0 + 1 andalso length(M) =:= 4 end, Is)
                            end, 30000),
              Node = maps:get(node, Victim),
              Detected = lists:min([T || #{health := #{Node := {down, T}}} <- Infos]) - T0,
              Learned = [L || #{learned_at := L} <- Infos],
              %% The proposer records its vote once its process reports back, just after the commit.
              Votes = await(fun() -> [D || Q <- Survivors, #{last_commit := #{epoch := E, duration_ms := D}} <- [info(Q)],
                                           E =:= E0 + 1] end,
                            fun(Ds) -> Ds =/= [] end, 5000),
              Vote = hd(Votes),
              %% Back with the same name and data directory.
              Back = restart(Victim),
              T1 = os:system_time(millisecond),
              ok = start_apps(Back),
              All = [Back | Survivors],
              Rejoined = await(fun() -> [info(Q) || Q <- All] end,
                               fun(Is) -> lists:all(fun(#{status := #{epoch := E, members := M, have_quorum := H}}) ->
                                                            E =:= E0 + 2 andalso length(M) =:= 5 andalso H end, Is)
                               end, 30000),
              ok = await_converged(All, 30000),
              Row = #{detect => Detected, commit => lists:min(Learned) - T0, all => lists:max(Learned) - T0,
                      vote => Vote, leader => Leader =:= Node,
                      rejoin => lists:max([L || #{learned_at := L} <- Rejoined]) - T1},
              io:format("crash ~2b (~s): detected ~4b ms, committed ~5b ms, all survivors ~5b ms, vote ~3b ms, rejoin ~5b ms~n",
                        [I, case Row of #{leader := true} -> "leader"; _ -> "member" end,
                         maps:get(detect, Row), maps:get(commit, Row), maps:get(all, Row), Vote, maps:get(rejoin, Row)]),
              {All, [Row | Acc]}
      end, {Cluster, []}, lists:seq(1, Runs)).

%%% Partition runs

partition_runs(Runs, Cluster) ->
    [begin
         Sorted = lists:sort(fun(#{node := A}, #{node := B}) -> A =< B end, Cluster),
         {Minority, Majority} = lists:split(2, rotate(I, Sorted)),
         #{status := #{epoch := E0}} = info(hd(Majority)),
         ok = split(Minority, Majority),
         Removed = await(fun() -> [info(Q) || Q <- Majority] end,
                         fun(Is) -> lists:all(fun(#{status := #{members := M, have_quorum := H}}) -> length(M) =:= 3 andalso H end, Is)
                         end, 30000),
         #{status := #{epoch := ESplit}} = hd(Removed),
         T0 = os:system_time(millisecond),
         %% The network heals; the managers reconnect by themselves.
         ok = heal(Cluster),
         Final = await(fun() -> [info(Q) || Q <- Cluster] end,
                       fun(Is) -> length(lists:usort([E || #{status := #{epoch := E}} <- Is])) =:= 1 andalso
                                      lists:all(fun(#{status := #{epoch := E, members := M, have_quorum := H}}) ->
                                                        E > ESplit andalso length(M) =:= 5 andalso H end, Is)
                       end, 30000),
         ok = await_converged(Cluster, 30000),
         %% When the minority adopted the majority's epoch: from the epoch_adopted record, kept in
         %% the nodes' logs only; the heal time to one membership is what matters, and the rejoin
         %% delay is part of it.
         Converged = lists:max([L || #{learned_at := L} <- Final]) - T0,
         #{status := #{epoch := EFinal}} = hd(Final),
         %% When the nodes that commit the rejoin saw the minority back.
         Back = lists:max([T || #{health := H} <- Final, #{node := N} <- Minority, {up, T} <- [maps:get(N, H, none)]]) - T0,
         io:format("partition ~2b: split at epoch ~b -> ~b (minority removed); healed: back after ~4b ms, "
                   "one membership of 5 at epoch ~b after ~5b ms~n", [I, E0, ESplit, Back, EFinal, Converged]),
         #{converge => Converged, back => Back}
     end || I <- lists:seq(1, Runs)].

%% A clean split, as in quorum_SUITE: every cross link goes down while global is held, so no
%% lost-connection report crosses it. Unlike the suite (one split per fresh cluster, held with
%% net_kernel:allow/1, which can only ever add nodes), the runs here split the same nodes again
%% and again, so each side is given a wrong cookie for the other side's nodes instead: no
%% handshake across can succeed until the cookies are restored.
split(SideA, SideB) ->
    All = SideA ++ SideB,
    [ok = call(Q, sys, suspend, [global_name_server]) || Q <- All],
    try
        %% Different cookies on the two sides: neither can authenticate to the other.
        [true = call(Q, erlang, set_cookie, [N, Cookie])
         || {Q, Other, Cookie} <- [{A, SideB, split_a} || A <- SideA] ++ [{B, SideA, split_b} || B <- SideB],
            N <- nodes_of(Other)],
        [true = call(Q, erlang, disconnect_node, [N]) || Q <- SideA, N <- nodes_of(SideB)],
        ok
    after
        [ok = call(Q, sys, resume, [global_name_server]) || Q <- All]
    end.

heal(Cluster) ->
    [true = call(Q, erlang, set_cookie, [N, list_to_atom(?COOKIE)]) || Q <- Cluster, N <- nodes_of(Cluster)],
    ok.

%%% Report

report(Crash, Split) ->
    io:format("~nTime in ms over ~b runs each (p99 of 20 runs is their maximum)~n", [length(Crash)]),
    io:format("~-58s ~7s ~7s ~7s ~7s~n", ["", "min", "median", "p99", "max"]),
    Rows = [{"kill -9 -> detected (first survivor)", [D || #{detect := D} <- Crash]},
            {"kill -9 -> reconfiguration committed (grace 1 s)", [C || #{commit := C} <- Crash]},
            {"kill -9 -> learned by every survivor", [A || #{all := A} <- Crash]},
            {"  of which the vote (proposal -> commit)", [V || #{vote := V} <- Crash]},
            {"  ... when the leader was killed", [C || #{commit := C, leader := true} <- Crash]},
            {"restarted node's apps start -> rejoined (rejoin delay 1 s)", [R || #{rejoin := R} <- Crash]},
            {"partition heals -> minority reconnected and heard", [B || #{back := B} <- Split]},
            {"partition heals -> one membership of 5 everywhere", [C || #{converge := C} <- Split]}],
    [io:format("~-58s ~7b ~7b ~7b ~7b~n", [Name, lists:min(S), pct(S, 50), pct(S, 99), lists:max(S)])
     || {Name, S} <- Rows, S =/= []],
    ok.

pct(Samples, P) ->
    Sorted = lists:sort(Samples),
    lists:nth(max(1, min(length(Sorted), ceil(P / 100 * length(Sorted)))), Sorted).

%%% Nodes (stdio control only)

start_cluster(N, Dir) ->
    Names = [peer:random_name(qbench) || _ <- lists:seq(1, N)],
    Booted = pmap(fun(Name) -> boot(Name) end, Names),
    Members = [Node || {_, Node} <- Booted],
    Cluster = [#{name => Name, node => Node, peer => Peer, dir => filename:join(Dir, atom_to_list(Node)),
                 members => Members}
               || {Name, {Peer, Node}} <- lists:zip(Names, Booted)],
    _ = pmap(fun start_apps/1, Cluster),
    ok = connect(Cluster, Cluster),
    Cluster.

restart(#{name := Name, node := Node} = Q) ->
    {Peer, Node} = boot(Name),
    Q#{peer => Peer}.

boot(Name) ->
    Paths = lists:append([["-pa", P] || P <- code:get_path(), filelib:is_dir(P)]),
    {ok, Peer, Node} = peer:start(#{
        name => Name,
        connection => standard_io,
        %% The release's scheduler flags (erlang/vm.args).
        %% Critical only: the refused handshakes across a split are logged as errors.
        args => ["-setcookie", ?COOKIE, "-kernel", "logger_level", "critical",
                 "+sbwt", "none", "+sbwtdcpu", "none", "+sbwtdio", "none" | Paths]
    }),
    ok = registry({add, Peer}),
    {Peer, Node}.

start_apps(#{peer := Peer, dir := Dir, members := Members}) ->
    Env = [{autonomic, data_dir, Dir}, {autonomic_monitor, metrics_port, none},
           {autonomic_quorum, members, Members}],
    [ok = peer:call(Peer, application, set_env, [App, K, V]) || {App, K, V} <- Env],
    {ok, _} = peer:call(Peer, application, ensure_all_started, [autonomic_quorum], 30000),
    ok.

%% Each node of From joins through one node of To; global completes the mesh.
connect(From, To) ->
    [true = call(Q, net_kernel, connect_node, [hd([N || #{node := N} <- To, N =/= Me])]) || #{node := Me} = Q <- From],
    All = lists:usort(From ++ To),
    Want = lists:sort(nodes_of(All)),
    _ = await(fun() -> [lists:sort([Me | call(Q, erlang, nodes, [])]) || #{node := Me} = Q <- All] end,
              fun(Views) -> lists:all(fun(V) -> V =:= Want end, Views) end, 30000),
    ok.

await_converged(Cluster, Timeout) ->
    _ = await(fun() -> [maps:get(status, info(Q)) || Q <- Cluster] end,
              fun(Ss) -> lists:all(fun(#{have_quorum := H, mode := M}) -> H andalso M =:= normal end, Ss)
                             andalso length(lists:usort([{E, L} || #{epoch := E, leader := L} <- Ss])) =:= 1
                             andalso hd([L || #{leader := L} <- Ss]) =/= undefined
              end, Timeout),
    ok.

info(Q) ->
    call(Q, quorum_manager, info, []).

call(#{peer := P}, M, F, A) ->
    peer:call(P, M, F, A, 10000).

nodes_of(Cluster) ->
    [N || #{node := N} <- Cluster].

rotate(K, L) ->
    {H, T} = lists:split(K rem length(L), L),
    T ++ H.

await(Get, Done, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    (fun Loop() ->
         V = Get(),
         case Done(V) of
             true -> V;
             false ->
                 case erlang:monotonic_time(millisecond) > Deadline of
                     true -> error({timeout, V});
                     false -> timer:sleep(5), Loop()
                 end
         end
     end)().

pmap(Fun, List) ->
    Self = self(),
    Refs = [begin R = make_ref(), _ = spawn_link(fun() -> Self ! {R, Fun(X)} end), R end || X <- List],
    [receive {R, V} -> V end || R <- Refs].

%% Every peer started, so that a failed run leaves nothing behind.
registry(Req) ->
    Pid = case whereis(quorum_bench_registry) of
        undefined ->
            P = spawn(fun() -> registry_loop([]) end),
            true = register(quorum_bench_registry, P),
            P;
        P ->
            P
    end,
    Ref = make_ref(),
    Pid ! {Ref, self(), Req},
    receive {Ref, Reply} -> Reply end.

registry_loop(Peers) ->
    receive
        {Ref, From, {add, Peer}} -> From ! {Ref, ok}, registry_loop([Peer | Peers]);
        {Ref, From, take} -> From ! {Ref, Peers}, registry_loop([])
    end.
