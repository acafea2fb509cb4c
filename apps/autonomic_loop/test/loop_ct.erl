%%% @doc Helpers of the loop's suite: a cluster of real peer nodes running the whole of autonomic
%%% (quorum members of one another) and the test workload ({@link loop_wl}), driven only through
%%% the peers' stdio control channels (the test node never joins their distribution), and
%%% readers of a node's journal.
-module(loop_ct).

-export([start_cluster/2, stop_cluster/1, kill/1, call/4, call/5, wait_until/3, coordinator/1,
         journal/2, op_receipts/2, final_of/2, now_ms/0, pmap/2]).

-define(COOKIE, "autonomic_loop_ct").

%% @doc Starts `N' peers with their data under `Dir', the given application settings
%% (`[{App, Key, Value}]'), members of one quorum, all connected, each running the workload.
-spec start_cluster(pos_integer(), map()) -> [map()].
start_cluster(N, #{dir := Dir, env := Env0}) ->
    Names = [peer:random_name(loop) || _ <- lists:seq(1, N)],
    Booted = pmap(fun boot/1, Names),
    Nodes = [Node || {_, Node} <- Booted],
    Env = [{autonomic_quorum, members, [{Nd, 1} || Nd <- Nodes]} | Env0],
    Cluster = [#{name => Name, node => Node, peer => Peer, dir => filename:join(Dir, atom_to_list(Node))}
               || {Name, {Peer, Node}} <- lists:zip(Names, Booted)],
    _ = pmap(fun(Q) -> start_apps(Q, Env) end, Cluster),
    [true = peer:call(P, net_kernel, connect_node, [hd(Nodes)]) || #{peer := P} <- tl(Cluster)],
    Want = lists:sort(Nodes),
    wait_until(fun() -> lists:all(fun(#{peer := P, node := Me}) ->
                                          lists:sort([Me | peer:call(P, erlang, nodes, [])]) =:= Want
                                  end, Cluster)
               end, fun() -> connections end, 15000),
    [ok = call(Q, loop_wl, start, []) || Q <- Cluster],
    Cluster.

boot(Name) ->
    Paths = lists:append([["-pa", P] || P <- code:get_path(), filelib:is_dir(P)]),
    {ok, Peer, Node} = peer:start(#{name => Name, connection => standard_io,
                                    args => ["-setcookie", ?COOKIE, "-kernel", "logger_level", "notice" | Paths]}),
    {Peer, Node}.

start_apps(#{peer := Peer, dir := Dir}, Env) ->
    ok = filelib:ensure_path(Dir),
    ok = peer:call(Peer, logger, add_handler, [loop_ct_file, logger_std_h,
        #{level => info, config => #{file => filename:join(Dir, "node.log")},
          filters => [{progress, {fun logger_filters:progress/2, stop}}],
          formatter => {logger_formatter, #{single_line => true, template => [time, " ", level, " ", msg, "\n"]}}}]),
    ok = peer:call(Peer, logger, set_primary_config, [level, info]),
    %% The console (the peer's stdio, which the controlling node prints) gets notices and worse.
    ok = peer:call(Peer, logger, set_handler_config, [default, level, notice]),
    Settings = [{autonomic, data_dir, Dir}, {autonomic, planner_cnode, false}, {autonomic_monitor, metrics_port, 0} | Env],
    [ok = peer:call(Peer, application, load, [App]) || App <- lists:usort([A || {A, _, _} <- Settings])],
    [ok = peer:call(Peer, application, set_env, [App, K, V]) || {App, K, V} <- Settings],
    {ok, _} = peer:call(Peer, application, ensure_all_started, [autonomic_loop], 60000),
    ok.

%% @doc Stops every node still running.
-spec stop_cluster([map()]) -> ok.
stop_cluster(Cluster) ->
    _ = pmap(fun(#{peer := P}) -> catch peer:stop(P) end, Cluster),
    ok.

%% @doc `kill -9' of a node's OS process; returns when it is gone.
-spec kill(map()) -> ok.
kill(#{peer := P} = Q) ->
    OsPid = call(Q, os, getpid, []),
    MRef = erlang:monitor(process, P),
    _ = os:cmd("kill -9 " ++ OsPid),
    receive {'DOWN', MRef, process, P, _} -> ok
    after 10000 -> error({still_running, Q})
    end.

%% @doc `peer:call/5' on a node map (10 s).
-spec call(map(), module(), atom(), [term()]) -> term().
call(Q, M, F, A) -> call(Q, M, F, A, 10000).

%% @doc `peer:call/5' on a node map.
-spec call(map(), module(), atom(), [term()], timeout()) -> term().
call(#{peer := P}, M, F, A, T) -> peer:call(P, M, F, A, T).

%% @doc Polls `Fun' every 50 ms; after `Timeout' ms fails with what `Show' returns.
-spec wait_until(fun(() -> boolean()), fun(() -> term()), non_neg_integer()) -> ok.
wait_until(Fun, Show, Timeout) ->
    Deadline = now_ms() + Timeout,
    (fun Loop() ->
         case catch Fun() of
             true -> ok;
             _ ->
                 case now_ms() > Deadline of
                     true -> ct:fail({timeout, Show()});
                     false -> timer:sleep(50), Loop()
                 end
         end
     end)().

%% @doc The node map of the active coordinator (as the first live node sees it).
-spec coordinator([map()]) -> map().
coordinator([Q | _] = Cluster) ->
    {ok, N} = call(Q, autonomic_loop, coordinator, []),
    hd([C || #{node := Node} = C <- Cluster, Node =:= N]).

%% @doc The decoded receipts with these actions on a node's ledger: `[{Seq, Action, Detail}]'.
-spec journal(map(), [binary()]) -> [{non_neg_integer(), binary(), map()}].
journal(Q, Actions) ->
    call(Q, autonomic_loop_journal, read, [Actions]).

%% @doc Every loop receipt of operation `Op' on a node's ledger, in order.
-spec op_receipts(map(), binary()) -> [{non_neg_integer(), binary(), map()}].
op_receipts(Q, Op) ->
    Actions = [<<"loop.operation.", (atom_to_binary(S))/binary>> || S <- autonomic_loop_op:states()] ++
        [<<"loop.gate">>, <<"loop.action">>, <<"loop.verify">>, <<"loop.rollback">>, <<"loop.knowledge">>,
         <<"loop.human">>, <<"loop.recovery">>],
    [R || {_, _, #{op := Id}} = R <- journal(Q, Actions), Id =:= Op].

%% @doc The final receipts (`completed', `rolled_back', `failed') on a node whose operation's
%% target is `Target': `[{Seq, State, Detail}]'.
-spec final_of(map(), term()) -> [{non_neg_integer(), atom(), map()}].
final_of(Q, Target) ->
    Finals = [<<"loop.operation.completed">>, <<"loop.operation.rolled_back">>, <<"loop.operation.failed">>],
    [{Seq, S, D} || {Seq, _, #{target := T, state := S} = D} <- journal(Q, Finals), T =:= Target].

%% @doc Monotonic time in ms.
-spec now_ms() -> integer().
now_ms() -> erlang:monotonic_time(millisecond).

%% @doc Parallel map.
-spec pmap(fun((A) -> B), [A]) -> [B].
pmap(F, L) ->
    Parent = self(),
    Refs = [begin Ref = make_ref(), spawn(fun() -> Parent ! {Ref, catch F(X)} end), Ref end || X <- L],
    [receive {Ref, R} -> R after 120000 -> error(pmap_timeout) end || Ref <- Refs].
