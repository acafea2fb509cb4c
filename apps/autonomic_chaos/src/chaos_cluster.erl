%%% @doc A local cluster of real peer nodes (OTP `peer') that chaos experiments run on, owned by
%%% this process: each node runs autonomic, its monitor, the Execute toolkit, the quorum
%%% manager, the jobs workload and (when it is on the code path) the MAPE-K loop, with the
%%% workload's services registered with the loop ({@link jobs_example:loop_services/0}).
%%%
%%% The controlling node drives the peers over their stdio (so no cut of the cluster's network
%%% ever cuts its control) and talks to them over a hidden distribution connection (so it never
%%% joins their `global' or `pg' and cannot bridge a partition).
%%%
%%% Faults it makes real: {@link kill/1} is `kill -9' of the node's OS process;
%%% {@link restart/1} boots it again with the same name and data directory; {@link cut/2}
%%% splits the cluster in two (every cross link goes down at once while `global' is held, and a
%%% cross connection cannot come back because each side uses a wrong cookie, its own, for the
%%% other's nodes); {@link heal/0} restores the cookies and reconnects.
%%%
%%% The peers are linked to this process: when it dies (the demo interrupted, a test failing)
%%% they go down with it; {@link stop/0} stops them all.
-module(chaos_cluster).
-behaviour(gen_server).

-export([start_link/1, start/1, stop/0, nodes/0, live/0, info/0, kill/1, restart/1, cut/2, heal/0,
         call/4, os_pid/1, dir/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(LOG, #{domain => [autonomic, chaos]}).
-define(CALL_TIMEOUT, 10000).
-define(BOOT_TIMEOUT, 120000).

-type opts() :: #{size => pos_integer(), dir := file:filename(), env => [{atom(), atom(), term()}],
                  apps => [atom()], prefix => string(), rate => non_neg_integer(),
                  memory_limit => pos_integer()}.
-export_type([opts/0]).

%%% API

%% @doc Boots `size' (5) nodes in parallel, connects them into one cluster and starts the
%% applications; the first two nodes hold the jobs stores (primary, secondary). Options: `dir'
%% (data directories go under it, one per node, with each node's `node.log'), `env' (extra
%% `{App, Key, Value}'), `apps' (default the workload, and the loop when present), `rate' (jobs/s
%% per node's client, default 20), `memory_limit' (the monitor's, bytes; default 1 GiB, so the
%% memory pressure scenario never has to fill the host).
-spec start_link(opts()) -> {ok, pid()} | {error, term()}.
start_link(Opts) ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, Opts, [{timeout, ?BOOT_TIMEOUT}]).

%% @doc As {@link start_link/1}, not linked to the caller (a test suite's setup process exits
%% right after starting it); {@link stop/0} ends it.
-spec start(opts()) -> {ok, pid()} | {error, term()}.
start(Opts) ->
    gen_server:start({local, ?MODULE}, ?MODULE, Opts, [{timeout, ?BOOT_TIMEOUT}]).

%% @doc Stops every node and this process.
-spec stop() -> ok.
stop() ->
    gen_server:stop(?MODULE, normal, 60000).

%% @doc Every node of the cluster (up or down), in start order.
-spec nodes() -> [node()].
nodes() ->
    gen_server:call(?MODULE, nodes).

%% @doc The nodes running now.
-spec live() -> [node()].
live() ->
    gen_server:call(?MODULE, live).

%% @doc Every node: `#{Node => #{status := up | down, os_pid, dir, restarts}}'; `cut' when split.
-spec info() -> map().
info() ->
    gen_server:call(?MODULE, info).

%% @doc The cluster's base directory.
-spec dir() -> file:filename().
dir() ->
    gen_server:call(?MODULE, dir).

%% @doc `kill -9' of a node's OS process; returns once it is gone.
-spec kill(node()) -> ok | {error, term()}.
kill(Node) ->
    gen_server:call(?MODULE, {kill, Node}, 30000).

%% @doc Boots a killed node again (same name, same data directory) and starts its applications.
-spec restart(node()) -> ok | {error, term()}.
restart(Node) ->
    gen_server:call(?MODULE, {restart, Node}, ?BOOT_TIMEOUT).

%% @doc Splits the cluster into `SideA' and `SideB' (every node on one side).
-spec cut([node()], [node()]) -> ok | {error, term()}.
cut(SideA, SideB) ->
    gen_server:call(?MODULE, {cut, SideA, SideB}, 30000).

%% @doc Ends a split: the sides may connect again, and are connected.
-spec heal() -> ok | {error, term()}.
heal() ->
    gen_server:call(?MODULE, heal, 30000).

%% @doc Calls `M:F(A)' on a node over its stdio control channel (works across a split).
-spec call(node(), module(), atom(), [term()]) -> term().
call(Node, M, F, A) ->
    case gen_server:call(?MODULE, {peer, Node}) of
        {ok, Peer} -> peer:call(Peer, M, F, A, ?CALL_TIMEOUT);
        {error, _} = E -> E
    end.

%% @doc A node's OS pid.
-spec os_pid(node()) -> {ok, string()} | {error, term()}.
os_pid(Node) ->
    case maps:find(Node, info()) of
        {ok, #{status := up, os_pid := P}} -> {ok, P};
        _ -> {error, {not_running, Node}}
    end.

%%% gen_server

%% @doc Boots the cluster.
-spec init(opts()) -> {ok, map()} | {stop, term()}.
init(Opts) ->
    process_flag(trap_exit, true),
    Size = maps:get(size, Opts, 5),
    Prefix = maps:get(prefix, Opts, "chaos"),
    Dir = maps:get(dir, Opts),
    Names = [list_to_atom(Prefix ++ integer_to_list(I) ++ "_" ++ os:getpid()) || I <- lists:seq(1, Size)],
    {ok, Host} = inet:gethostname(),
    Nodes = [list_to_atom(atom_to_list(N) ++ "@" ++ Host) || N <- Names],
    St0 = #{opts => Opts, dir => Dir, order => Nodes, nodes => #{}, cut => undefined,
            cookie => erlang:get_cookie()},
    try
        Booted = pmap(fun(Name) -> boot(Name) end, Names),
        _ = [link(Peer) || {Peer, _, _} <- Booted],
        Ns = maps:from_list([{Node, #{peer => Peer, name => Name, os_pid => OsPid, status => up, restarts => 0}}
                             || {Name, {Peer, Node, OsPid}} <- lists:zip(Names, Booted)]),
        St = St0#{nodes := Ns},
        %% Connected first, so the applications start in a cluster (no false alarms at start).
        ok = connect(Nodes, St),
        _ = pmap(fun(Node) -> start_apps(Node, St) end, Nodes),
        {ok, St}
    catch C:R:S ->
        logger:error("chaos cluster: boot failed: ~p:~p ~p", [C, R, S], ?LOG),
        {stop, {boot_failed, R}}
    end.

%% @doc The cluster's requests.
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()} | {noreply, map()}.
handle_call(nodes, _From, #{order := Order} = St) ->
    {reply, Order, St};
handle_call(live, _From, #{order := Order, nodes := Ns} = St) ->
    {reply, [N || N <- Order, maps:get(status, maps:get(N, Ns)) =:= up], St};
handle_call(info, _From, #{nodes := Ns, cut := Cut} = St) ->
    {reply, (maps:map(fun(_, V) -> maps:with([status, os_pid, restarts], V) end, Ns))#{cut => Cut}, St};
handle_call(dir, _From, #{dir := Dir} = St) ->
    {reply, Dir, St};
handle_call({peer, Node}, _From, #{nodes := Ns} = St) ->
    case maps:find(Node, Ns) of
        {ok, #{status := up, peer := P}} -> {reply, {ok, P}, St};
        _ -> {reply, {error, {not_running, Node}}, St}
    end;
handle_call({kill, Node}, _From, #{nodes := Ns} = St) ->
    case maps:find(Node, Ns) of
        {ok, #{status := up, peer := P, os_pid := OsPid} = N} ->
            MRef = erlang:monitor(process, P),
            _ = os:cmd("kill -9 " ++ OsPid),
            receive {'DOWN', MRef, process, P, _} -> ok
            after 10000 -> ok
            end,
            %% The peer process exits when its stdio closes; drop its link's exit.
            receive {'EXIT', P, _} -> ok after 0 -> ok end,
            {reply, ok, St#{nodes := Ns#{Node := N#{status := down}}}};
        {ok, _} -> {reply, {error, {not_running, Node}}, St};
        error -> {reply, {error, {unknown_node, Node}}, St}
    end;
handle_call({restart, Node}, From, #{nodes := Ns, order := Order} = St) ->
    %% Booting takes seconds: a process of its own does it, so the cluster keeps answering (the
    %% orchestrator's checks, the tracker's probes) meanwhile.
    case maps:find(Node, Ns) of
        {ok, #{status := down, name := Name} = N} ->
            Self = self(),
            Others = [O || O <- Order, O =/= Node, maps:get(status, maps:get(O, Ns)) =:= up],
            _ = spawn(fun() ->
                              MRef = erlang:monitor(process, Self),
                              R = try
                                      {Peer, Node, OsPid} = boot(Name),
                                      N1 = N#{peer := Peer, os_pid := OsPid, status := up},
                                      St1 = St#{nodes := Ns#{Node := N1}},
                                      ok = connect([Node | Others], St1),
                                      ok = start_apps(Node, St1),
                                      {ok, Peer, OsPid}
                                  catch C:E ->
                                      logger:warning("chaos cluster: restart of ~p failed: ~p:~p", [Node, C, E], ?LOG),
                                      {error, {restart_failed, E}}
                                  end,
                              Self ! {restarted, Node, From, R, self()},
                              %% Until the cluster has linked the new peer, it is this process's:
                              %% if the cluster is gone meanwhile, this stops it.
                              receive
                                  adopted -> ok;
                                  {'DOWN', MRef, process, _, _} ->
                                      _ = [catch peer:stop(P) || {ok, P, _} <- [R]],
                                      ok
                              end
                      end),
            {noreply, St#{nodes := Ns#{Node := N#{status := restarting}}}};
        {ok, _} -> {reply, {error, {running, Node}}, St};
        error -> {reply, {error, {unknown_node, Node}}, St}
    end;
handle_call({cut, A, B}, _From, #{cut := undefined} = St) ->
    Live = live_nodes(St),
    case lists:sort(A ++ B) =:= lists:sort(Live) andalso A =/= [] andalso B =/= [] of
        true ->
            ok = split(A, B, St),
            {reply, ok, St#{cut := {A, B}}};
        false ->
            {reply, {error, {not_a_split_of_the_live_nodes, A, B}}, St}
    end;
handle_call({cut, _, _}, _From, St) ->
    {reply, {error, already_cut}, St};
handle_call(heal, _From, #{cut := undefined} = St) ->
    {reply, ok, St};
handle_call(heal, _From, #{cookie := Cookie} = St) ->
    Live = live_nodes(St),
    _ = pmap(fun(N) -> [catch pcall(N, erlang, set_cookie, [O, Cookie], St) || O <- Live, O =/= N] end, Live),
    R = try connect(Live, St) catch C:E -> {error, {C, E}} end,
    {reply, R, St#{cut := undefined}};
handle_call(_, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @doc No casts.
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_, St) ->
    {noreply, St}.

%% @doc A restart done; a peer that went away on its own.
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({restarted, Node, From, R, Worker}, #{nodes := Ns} = St) ->
    N = maps:get(Node, Ns),
    case R of
        {ok, Peer, OsPid} ->
            %% Linked here, so the node goes down with this process.
            true = link(Peer),
            Worker ! adopted,
            gen_server:reply(From, ok),
            {noreply, St#{nodes := Ns#{Node := N#{peer => Peer, os_pid := OsPid, status := up,
                                                  restarts := maps:get(restarts, N) + 1}}}};
        {error, _} = E ->
            Worker ! adopted,
            gen_server:reply(From, E),
            {noreply, St#{nodes := Ns#{Node := N#{status := down}}}}
    end;
handle_info({'EXIT', P, _}, #{nodes := Ns} = St) ->
    Ns1 = maps:map(fun(_, #{peer := Q} = N) when Q =:= P -> N#{status := down}; (_, N) -> N end, Ns),
    {noreply, St#{nodes := Ns1}};
handle_info(_, St) ->
    {noreply, St}.

%% @doc Stops every node still running.
-spec terminate(term(), map()) -> ok.
terminate(_Reason, #{nodes := Ns}) ->
    _ = pmap(fun(#{peer := P}) -> catch peer:stop(P) end, [N || N = #{status := up} <- maps:values(Ns), is_map_key(peer, N)]),
    %% A node whose VM would not stop is killed.
    _ = [os:cmd("kill -9 " ++ OsPid) || #{os_pid := OsPid} <- maps:values(Ns)],
    ok.

%%% Internals

boot(Name) ->
    Paths = lists:append([["-pa", P] || P <- code:get_path(), filelib:is_dir(P)]),
    %% Not start_link: the booting process may be a helper; the cluster process links it.
    {ok, Peer, Node} = peer:start(#{
        name => Name,
        connection => standard_io,
        args => ["-setcookie", atom_to_list(erlang:get_cookie()), "-kernel", "logger_level", "notice",
                 "+sbwt", "none" | Paths]
    }),
    OsPid = peer:call(Peer, os, getpid, [], ?CALL_TIMEOUT),
    {Peer, Node, OsPid}.

pcall(Node, M, F, A, #{nodes := Ns}) ->
    #{peer := P} = maps:get(Node, Ns),
    peer:call(P, M, F, A, ?CALL_TIMEOUT).

live_nodes(#{order := Order, nodes := Ns}) ->
    [N || N <- Order, maps:get(status, maps:get(N, Ns)) =:= up].

start_apps(Node, #{dir := Dir, order := Order, opts := Opts} = St) ->
    NodeDir = filename:join(Dir, atom_to_list(Node)),
    ok = filelib:ensure_path(NodeDir),
    %% Each node logs to node.log in its data directory, never to its stdio (the control channel).
    ok = pcall(Node, logger, remove_handler, [default], St),
    ok = pcall(Node, logger, add_handler, [chaos_file, logger_std_h,
        #{level => notice, config => #{file => filename:join(NodeDir, "node.log")},
          formatter => {logger_formatter, #{single_line => true, template => [time, " ", level, " ", msg, "\n"]}}}], St),
    [Primary, Secondary | _] = Order,
    Settings = [{autonomic, data_dir, NodeDir},
                %% The built-in planner: five planner C-nodes (OS processes) would only add load.
                {autonomic, planner_cnode, false},
                %% The policy in force, with the gates' cooldown scaled to the accelerated fault
                %% schedule (10 s by default: one fault every 5 s would have operations wait in
                %% their safety check most of the time). `policy' in `env' replaces it.
                {autonomic, policy, #{name => <<"chaos-cluster">>, target_system => <<"jobs_example">>,
                                      gates => #{cooldown_ms => 1000}}},
                {autonomic_monitor, metrics_port, 0},
                {autonomic_monitor, memory_limit, maps:get(memory_limit, Opts, 1 bsl 30)},
                %% Resources sampled 4 times a second (the default is once): chaos runs at an
                %% accelerated schedule, and memory pressure is detected by the sampler.
                {autonomic_monitor, sample_interval_ms, 250},
                %% The host's CPU (what the monitor's cpu threshold reads) is shared by every
                %% node of this one machine: at the default 90% it fires on the cluster's own
                %% load, and the loop sheds load all the time. A node's saturation is reported by
                %% the workload from its schedulers (jobs_health).
                {autonomic_monitor, thresholds, #{cpu => 99}},
                {autonomic_quorum, members, Order},
                {jobs_example, stores, [Primary, Secondary]},
                {jobs_example, rate, maps:get(rate, Opts, 20)}
                | maps:get(env, Opts, [])],
    [ok = pcall(Node, application, load, [App], St) || App <- lists:usort([A || {A, _, _} <- Settings])],
    [ok = pcall(Node, application, set_env, [App, K, V], St) || {App, K, V} <- Settings],
    Apps = maps:get(apps, Opts, default_apps()),
    _ = [{ok, _} = peer_call_long(Node, application, ensure_all_started, [App], St) || App <- Apps],
    %% The loop learns what it may heal here.
    _ = [ok = pcall(Node, autonomic_loop, register_service, [Name, Spec], St)
         || lists:member(autonomic_loop, Apps), {Name, Spec} <- pcall(Node, jobs_example, loop_services, [], St)],
    ok.

peer_call_long(Node, M, F, A, #{nodes := Ns}) ->
    #{peer := P} = maps:get(Node, Ns),
    peer:call(P, M, F, A, 60000).

%% @doc The applications every node runs: the workload, and the loop when it is built.
default_apps() ->
    Loop = case code:lib_dir(autonomic_loop) of
        {error, _} -> [];
        _ -> [autonomic_loop]
    end,
    [autonomic_quorum, jobs_example | Loop].

%% Connects every node to the first other one, as a node joining a cluster does, lets global
%% complete the mesh, and connects this node to each (hidden).
connect(Nodes, St) ->
    _ = [pcall(N, net_kernel, connect_node, [hd(Nodes -- [N])], St) || N <- Nodes, Nodes -- [N] =/= []],
    Want = lists:sort(Nodes),
    ok = wait(fun() -> lists:all(fun(N) -> Want -- [N | pcall(N, erlang, nodes, [], St)] =:= [] end, Nodes) end,
              15000),
    _ = [true = net_kernel:hidden_connect_node(N) || N <- Nodes],
    ok.

wait(Fun, Left) when Left =< 0 ->
    case Fun() of true -> ok; false -> error(cluster_not_connected) end;
wait(Fun, Left) ->
    case Fun() of
        true -> ok;
        false -> timer:sleep(50), wait(Fun, Left - 50)
    end.

%% A clean split, as a real network failure presents it to global: every cross link goes down
%% while no node's global_name_server runs. A cross link cannot come back because each side uses
%% a wrong cookie for the other side's nodes, and a different one per side (with the same wrong
%% cookie on both sides the handshake would succeed). net_kernel:allow/1 could cut once, but
%% cannot take a node off its list again.
split(A, B, #{cookie := Cookie} = St) ->
    All = A ++ B,
    _ = pmap(fun(N) -> ok = pcall(N, sys, suspend, [global_name_server], St) end, All),
    try
        _ = pmap(fun(N) ->
                         {Side, Cross} = case lists:member(N, A) of true -> {a, B}; false -> {b, A} end,
                         Bad = list_to_atom(lists:concat(["cut_", Side, "_", Cookie])),
                         [true = pcall(N, erlang, set_cookie, [O, Bad], St) || O <- Cross],
                         [pcall(N, erlang, disconnect_node, [O], St) || O <- Cross]
                 end, All),
        ok
    after
        _ = pmap(fun(N) -> catch pcall(N, sys, resume, [global_name_server], St) end, All)
    end,
    ok.

pmap(Fun, List) ->
    Self = self(),
    Refs = [begin
                Ref = make_ref(),
                _ = spawn_link(fun() -> Self ! {Ref, try {ok, Fun(X)} catch C:R:S -> {C, {R, S}} end} end),
                Ref
            end || X <- List],
    [receive {Ref, {ok, R}} -> R; {Ref, {C, R}} -> erlang:C(R) end || Ref <- Refs].
