%%% @doc Helpers of the quorum suites: a cluster of real peer nodes that the test node drives
%%% only through their stdio control channels (the test node never joins their distribution, so
%%% it can neither bridge a partition nor be cut off by one), and the invariant checker.
%%%
%%% The checker is a process linked to the test case. Every `interval' ms it asks every live node
%%% for `quorum_manager:get_quorum_status/0' (in parallel, over stdio, so both sides of a split are
%%% reached) and fails the test case at once, by exiting with `{invariant_violated, ...}', when
%%% <ul>
%%%   <li>two nodes report `have_quorum = true' while their `reachable' sets are disjoint (two
%%%       groups that cannot see each other both claim quorum);</li>
%%%   <li>during a declared split, nodes on both sides report `have_quorum = true';</li>
%%%   <li>two nodes report the same epoch with different members (the vote chose two values).</li>
%%% </ul>
-module(quorum_ct).

-export([start_cluster/2, start_node/2, boot_node/1, start_apps/1, stop_cluster/1, stop_all/0, connect/2, kill/1, os_pid/1]).
-export([propose_at/3]).
-export([call/4, status/1, statuses/1, wait_until/3, now_ms/0, pmap/2]).
-export([checker_start/2, checker_set_peer/3, checker_sides/2, checker_stop/1, violations/2]).

-define(COOKIE, "autonomic_quorum_ct").

%%% Cluster

%% @doc Starts `N' peer nodes running autonomic, autonomic_monitor and autonomic_quorum, members
%% of one cluster (weights from `weights', a list as long as N, default all 1), each with its own
%% data directory under `dir', all connected. Extra quorum settings in `env'
%% (`[{Key, Value}]'). Returns a list of node maps `#{name, node, peer, dir, env}'.
-spec start_cluster(pos_integer(), map()) -> [map()].
start_cluster(N, Opts) ->
    Names = [peer:random_name(quorum) || _ <- lists:seq(1, N)],
    Booted = pmap(fun(Name) -> boot(Name) end, Names),
    Nodes = [Node || {_, Node} <- Booted],
    Weights = maps:get(weights, Opts, [1 || _ <- Nodes]),
    Members = lists:zip(Nodes, Weights),
    Env = [{autonomic_quorum, members, Members} | [{autonomic_quorum, K, V} || {K, V} <- maps:get(env, Opts, [])]],
    Cluster = [#{name => Name, node => Node, peer => Peer, env => Env,
                 dir => filename:join(maps:get(dir, Opts), atom_to_list(Node))}
               || {Name, {Peer, Node}} <- lists:zip(Names, Booted)],
    _ = pmap(fun(Q) -> start_apps(Q) end, Cluster),
    ok = connect(Cluster, Cluster),
    Cluster.

%% @doc Starts a node again with the same name, data directory and settings (after a kill),
%% connects it to `Others' (if any) and returns its new node map.
-spec start_node(map(), [map()]) -> map().
start_node(Q, Others) ->
    Q1 = boot_node(Q),
    ok = start_apps(Q1),
    ok = case Others of
        [] -> ok;
        _ -> connect([Q1], Others)
    end,
    Q1.

%% @doc Starts the VM of a node again, with the same name, without starting any application;
%% returns the node map with its new peer. Then {@link start_apps/1}.
-spec boot_node(map()) -> map().
boot_node(#{name := Name, node := Node} = Q) ->
    {Peer, Node} = boot(Name),
    Q#{peer => Peer}.

boot(Name) ->
    Paths = lists:append([["-pa", P] || P <- code:get_path(), filelib:is_dir(P)]),
    {ok, Peer, Node} = peer:start(#{
        name => Name,
        connection => standard_io,
        args => ["-setcookie", ?COOKIE, "-kernel", "logger_level", "notice" | Paths]
    }),
    ok = registry({add, Peer}),
    {Peer, Node}.

%% @doc Stops every peer node started by this module and still running (tests that fail half way
%% included).
-spec stop_all() -> ok.
stop_all() ->
    Peers = registry(take),
    _ = pmap(fun(P) -> catch peer:stop(P) end, Peers),
    ok.

%% Every peer started, kept by a process of its own so that a test case that crashes leaves
%% nothing running behind it.
registry(Req) ->
    Pid = case whereis(quorum_ct_registry) of
        undefined ->
            P = spawn(fun() -> registry_loop([]) end),
            try register(quorum_ct_registry, P), P
            catch error:badarg -> exit(P, kill), whereis(quorum_ct_registry)
            end;
        P ->
            P
    end,
    Ref = make_ref(),
    Pid ! {Ref, self(), Req},
    receive {Ref, Reply} -> Reply after 5000 -> error(registry_not_answering) end.

registry_loop(Peers) ->
    receive
        {Ref, From, {add, Peer}} -> From ! {Ref, ok}, registry_loop([Peer | Peers]);
        {Ref, From, take} -> From ! {Ref, Peers}, registry_loop([])
    end.

%% @doc Runs on a peer: waits (spinning) until system time `StartUs' (microseconds), then
%% proposes the change, so that proposals on two nodes start at the same instant.
-spec propose_at(integer(), list(), list()) -> term().
propose_at(StartUs, Add, Remove) ->
    spin_until(StartUs),
    quorum_manager:propose_membership_change(Add, Remove).

spin_until(T) ->
    case erlang:system_time(microsecond) >= T of
        true -> ok;
        false -> spin_until(T)
    end.

%% @doc Starts autonomic, autonomic_monitor and autonomic_quorum on a booted node, with its data
%% directory, members and settings; its log goes to node.log in the data directory.
-spec start_apps(map()) -> ok.
start_apps(#{peer := Peer, dir := Dir, env := Env}) ->
    %% Each node logs to node.log in its data directory (read it when a test fails).
    ok = filelib:ensure_path(Dir),
    ok = peer:call(Peer, logger, add_handler, [quorum_ct_file, logger_std_h,
        #{level => info, config => #{file => filename:join(Dir, "node.log")},
          filters => [{progress, {fun logger_filters:progress/2, stop}}],
          formatter => {logger_formatter, #{single_line => true, template => [time, " ", level, " ", msg, "\n"]}}}]),
    ok = peer:call(Peer, logger, set_primary_config, [level, info]),
    Settings = [{autonomic, data_dir, Dir}, {autonomic_monitor, metrics_port, 0} | Env],
    [ok = peer:call(Peer, application, set_env, [App, K, V]) || {App, K, V} <- Settings],
    {ok, _} = peer:call(Peer, application, ensure_all_started, [autonomic_quorum], 30000),
    ok.

%% @doc Connects every node of `From' to the first node of `To' other than itself, as a node
%% joining a cluster does, lets `global' (connect_all) complete the mesh and waits until every
%% node of both lists sees all the others. (Connecting every pair from the test instead races
%% with global's own connection attempts.)
-spec connect([map()], [map()]) -> ok.
connect(From, To) ->
    [true = peer:call(P, net_kernel, connect_node, [hd([N || #{node := N} <- To, N =/= Me])])
     || #{peer := P, node := Me} <- From],
    All = lists:usort(From ++ To),
    Want = lists:sort([N || #{node := N} <- All]),
    wait_until(fun() -> lists:all(fun(#{peer := P, node := Me}) ->
                                          lists:sort([Me | peer:call(P, erlang, nodes, [])]) =:= Want
                                  end, All)
               end,
               fun() -> [{Me, peer:call(P, erlang, nodes, [])} || #{peer := P, node := Me} <- All] end, 15000).

%% @doc Stops every node still running.
-spec stop_cluster([map()]) -> ok.
stop_cluster(Cluster) ->
    _ = pmap(fun(#{peer := P}) -> catch peer:stop(P) end, Cluster),
    ok.

%% @doc The OS pid of a node.
-spec os_pid(map()) -> string().
os_pid(#{peer := P}) ->
    peer:call(P, os, getpid, []).

%% @doc Kills a node with `kill -9' (its OS process, as a crash would); returns when the process
%% is gone.
-spec kill(map()) -> ok.
kill(#{peer := P} = Q) ->
    OsPid = os_pid(Q),
    MRef = erlang:monitor(process, P),
    _ = os:cmd("kill -9 " ++ OsPid),
    receive {'DOWN', MRef, process, P, _} -> ok
    after 10000 -> error({still_running, Q})
    end.

%% @doc `peer:call/5' with a timeout, on a node map.
-spec call(map(), module(), atom(), [term()]) -> term().
call(#{peer := P}, M, F, A) ->
    peer:call(P, M, F, A, 10000).

%% @doc A node's quorum status.
-spec status(map()) -> map().
status(Q) ->
    call(Q, quorum_manager, get_quorum_status, []).

%% @doc The status of every node, as `[{Node, Status}]', asked in parallel.
-spec statuses([map()]) -> [{node(), map()}].
statuses(Cluster) ->
    lists:zip([N || #{node := N} <- Cluster], pmap(fun status/1, Cluster)).

%% @doc Polls `Fun' every 20 ms until it returns true; after `Timeout' ms fails the test with
%% what `Show' returns.
-spec wait_until(fun(() -> boolean()), fun(() -> term()), non_neg_integer()) -> ok.
wait_until(Fun, Show, Timeout) ->
    Deadline = now_ms() + Timeout,
    (fun Loop() ->
         case Fun() of
             true -> ok;
             false ->
                 case now_ms() > Deadline of
                     true -> ct:fail({timeout, Show()});
                     false -> timer:sleep(20), Loop()
                 end
         end
     end)().

-spec now_ms() -> integer().
now_ms() ->
    erlang:monotonic_time(millisecond).

%% @doc `lists:map/2' in parallel; an exception in one call is raised in the caller.
-spec pmap(fun((term()) -> term()), [term()]) -> [term()].
pmap(Fun, List) ->
    Self = self(),
    Refs = [begin
                Ref = make_ref(),
                _ = spawn_link(fun() -> Self ! {Ref, catch_all(Fun, X)} end),
                Ref
            end || X <- List],
    [receive {Ref, {ok, R}} -> R; {Ref, {Class, Reason}} -> erlang:Class(Reason) end || Ref <- Refs].

catch_all(Fun, X) ->
    try {ok, Fun(X)}
    catch Class:Reason:Stack -> {Class, {Reason, Stack}}
    end.

%%% Invariant checker

%% @doc Starts the checker, linked to the caller, polling every node of `Cluster' every
%% `Interval' ms.
-spec checker_start([map()], pos_integer()) -> pid().
checker_start(Cluster, Interval) ->
    Parent = self(),
    Peers = maps:from_list([{N, P} || #{node := N, peer := P} <- Cluster]),
    spawn_link(fun() -> checker(#{parent => Parent, peers => Peers, sides => undefined, interval => Interval,
                                  rounds => 0, answers => 0}) end).

%% @doc Tells the checker a node's new peer pid (after a restart), or `undefined' (killed).
-spec checker_set_peer(pid(), node(), pid() | undefined) -> ok.
checker_set_peer(Checker, Node, Peer) ->
    checker_call(Checker, {peer, Node, Peer}).

%% @doc Declares a split (`[SideA, SideB]', node lists) or `undefined' when there is none. Polls
%% started after this returns use it.
-spec checker_sides(pid(), [[node()]] | undefined) -> ok.
checker_sides(Checker, Sides) ->
    checker_call(Checker, {sides, Sides}).

%% @doc Stops the checker; returns how many rounds it polled and how many statuses it checked.
-spec checker_stop(pid()) -> #{rounds := non_neg_integer(), answers := non_neg_integer()}.
checker_stop(Checker) ->
    Result = checker_call(Checker, stop),
    unlink(Checker),
    Result.

checker_call(Checker, Req) ->
    Ref = make_ref(),
    Checker ! {Ref, self(), Req},
    receive {Ref, Reply} -> Reply
    after 10000 -> error(checker_not_answering)
    end.

checker(#{interval := Interval} = St) ->
    receive
        {Ref, From, {peer, Node, Peer}} ->
            From ! {Ref, ok},
            checker(St#{peers := maps:put(Node, Peer, maps:get(peers, St))});
        {Ref, From, {sides, Sides}} ->
            From ! {Ref, ok},
            checker(St#{sides := Sides});
        {Ref, From, stop} ->
            From ! {Ref, maps:with([rounds, answers], St)}
    after Interval ->
        checker(poll(St))
    end.

poll(#{parent := Parent, peers := Peers, sides := Sides, rounds := R, answers := A} = St) ->
    Live = [{N, P} || {N, P} <- maps:to_list(Peers), is_pid(P)],
    Self = self(),
    Tag = make_ref(),
    _ = [spawn(fun() -> Self ! {Tag, N, catch peer:call(P, quorum_manager, get_quorum_status, [], 1000)} end)
         || {N, P} <- Live],
    Statuses = collect(Tag, length(Live), []),
    case violations(Statuses, Sides) of
        [] ->
            St#{rounds := R + 1, answers := A + length(Statuses)};
        Found ->
            ct:pal("invariant violated: ~p~nstatuses: ~p", [Found, Statuses]),
            exit(Parent, {invariant_violated, Found}),
            exit({invariant_violated, Found})
    end.

collect(_Tag, 0, Acc) ->
    Acc;
collect(Tag, N, Acc) ->
    receive
        {Tag, Node, Status} when is_map(Status) -> collect(Tag, N - 1, [{Node, Status} | Acc]);
        {Tag, _Node, _Error} -> collect(Tag, N - 1, Acc)
    after 3000 ->
        Acc
    end.

%% @doc The invariant violations in one round of statuses (`[{Node, Status}]'), given the declared
%% split (or `undefined').
-spec violations([{node(), map()}], [[node()]] | undefined) -> [term()].
violations(Statuses, Sides) ->
    WithQuorum = [{N, S} || {N, #{have_quorum := true} = S} <- Statuses],
    Disjoint = [{disjoint_groups_with_quorum, {A, RA}, {B, RB}}
                || {A, #{reachable := RA}} <- WithQuorum, {B, #{reachable := RB}} <- WithQuorum,
                   A < B, RA -- (RA -- RB) =:= []],
    BothSides = case Sides of
        [S1, S2] ->
            case {[N || {N, _} <- WithQuorum, lists:member(N, S1)], [N || {N, _} <- WithQuorum, lists:member(N, S2)]} of
                {[_ | _] = Q1, [_ | _] = Q2} -> [{both_sides_have_quorum, Q1, Q2}];
                _ -> []
            end;
        undefined ->
            []
    end,
    Conflicts = [{two_memberships_in_one_epoch, EA, {A, MA}, {B, MB}}
                 || {A, #{epoch := EA, members := MA}} <- Statuses, {B, #{epoch := EB, members := MB}} <- Statuses,
                    A < B, EA =:= EB, MA =/= MB],
    Disjoint ++ BothSides ++ Conflicts.
