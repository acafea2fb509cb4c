%%% @doc The knowledge base across real nodes (OTP `peer', each with its own data directory):
%%% <ul>
%%%   <li>a failure recorded on one node is visible on the others within 1 s;</li>
%%%   <li>a node killed with `kill -9' and restarted on the same data directory has its
%%%       knowledge back, loaded from its own disk;</li>
%%%   <li>on a node that cannot reach any other (own cookie), `kill -9' loses at most the records
%%%       of the last flush interval, and nothing with `kb_flush_ms' 0;</li>
%%%   <li>a node that joins later catches up with everything;</li>
%%%   <li>a clear empties every node, and a node that was down during the clear does not bring the
%%%       old records back when it returns.</li>
%%% </ul>
-module(autonomic_kb_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([recorded_on_one_visible_on_all_within_1s/1, kill_9_and_restart_restores_knowledge/1,
         kill_9_loses_at_most_the_flush_interval/1, kill_9_loses_nothing_when_flushing_every_record/1,
         late_joiner_catches_up/1, clear_reaches_every_node_and_survives_a_returning_node/1]).

-define(FLUSH_MS, 100).
-define(VISIBLE_MS, 1000).

suite() -> [{timetrap, {minutes, 5}}].

all() ->
    [recorded_on_one_visible_on_all_within_1s, kill_9_and_restart_restores_knowledge,
     kill_9_loses_at_most_the_flush_interval, kill_9_loses_nothing_when_flushing_every_record,
     late_joiner_catches_up, clear_reaches_every_node_and_survives_a_returning_node].

init_per_suite(Config) ->
    ok = autonomic_ct:ensure_distributed(),
    Root = ?config(priv_dir, Config),
    Nodes = [start(Name, filename:join(Root, atom_to_list(Name))) || Name <- [kb_a, kb_b, kb_c]],
    %% The cluster changes as tests restart nodes: kept here rather than in Config.
    persistent_term:put({?MODULE, nodes}, Nodes),
    [{root, Root} | Config].

end_per_suite(_Config) ->
    [catch peer:stop(Peer) || {_, Peer, _} <- cluster()],
    _ = persistent_term:erase({?MODULE, nodes}),
    ok.

cluster() ->
    persistent_term:get({?MODULE, nodes}).

%%% Tests

recorded_on_one_visible_on_all_within_1s(_Config) ->
    Nodes = [N || {_, _, N} <- cluster()],
    ok = await_owners(Nodes),
    Latencies = [begin
        Origin = lists:nth(1 + I rem 3, Nodes),
        Failure = failure([<<"visible">>, integer_to_binary(I)]),
        {ok, Id} = erpc:call(Origin, autonomic_kb, record, [Failure]),
        T0 = erlang:monotonic_time(millisecond),
        [wait_visible(N, Id, T0) || N <- Nodes -- [Origin]]
    end || I <- lists:seq(1, 30)],
    Worst = lists:max(lists:append(Latencies)),
    ct:pal("visible on every other node within ~b ms (worst of 60)", [Worst]),
    ?assert(Worst =< ?VISIBLE_MS).

kill_9_and_restart_restores_knowledge(Config) ->
    [A, B, {Name, _Peer, C}] = cluster(),
    Ids = [begin {ok, Id} = erpc:call(C, autonomic_kb, record, [failure([<<"on_c">>, integer_to_binary(I)])]), Id end
           || I <- lists:seq(1, 50)],
    %% Beyond the flush interval (plus the time one flush takes), the records are on disk.
    timer:sleep(2 * ?FLUSH_MS + 100),
    ok = kill_9(C),
    {_, _, C2} = New = start(Name, dir(Config, Name)),
    %% Its own disk, not only the peers, gave them back: the load report counts them.
    #{loaded := #{loaded := Loaded}} = erpc:call(C2, autonomic_kb, info, []),
    ct:pal("restarted node loaded ~b records from disk", [Loaded]),
    ?assert(Loaded >= 50),
    [?assertMatch({ok, _}, erpc:call(C2, autonomic_kb, get, [Id])) || Id <- Ids],
    %% And it converges with the others.
    persistent_term:put({?MODULE, nodes}, [A, B, New]),
    ok = autonomic_ct:wait_until(fun() -> ids(C2) =:= ids(element(3, A)) andalso ids(C2) =:= ids(element(3, B)) end, 5000).

kill_9_loses_at_most_the_flush_interval(Config) ->
    Dir = filename:join(?config(root, Config), "isolated_flush"),
    Flush = 200,
    Iso = start_isolated(Dir, Flush),
    Before = [record_isolated(Iso, I) || I <- lists:seq(1, 100)],
    timer:sleep(2 * Flush + 100),
    After = [record_isolated(Iso, I) || I <- lists:seq(101, 200)],
    kill_9_isolated(Iso),
    Iso2 = start_isolated(Dir, Flush),
    Present = [Id || Id <- Before ++ After, found(peer:call(Iso2, autonomic_kb, get, [Id]))],
    ct:pal("after kill -9: ~b of the 100 records of the last flush interval survived", [length(Present) - 100]),
    %% Every record older than the flush interval survived; the last interval may be lost.
    [?assert(lists:member(Id, Present)) || Id <- Before],
    ?assertEqual(length(Present), peer:call(Iso2, autonomic_kb, size, [])),
    peer:stop(Iso2).

kill_9_loses_nothing_when_flushing_every_record(Config) ->
    Dir = filename:join(?config(root, Config), "isolated_sync"),
    Iso = start_isolated(Dir, 0),
    Ids = [record_isolated(Iso, I) || I <- lists:seq(1, 100)],
    %% Killed right after the last record/1 returned.
    kill_9_isolated(Iso),
    Iso2 = start_isolated(Dir, 0),
    ?assertEqual(100, peer:call(Iso2, autonomic_kb, size, [])),
    [?assertMatch({ok, _}, peer:call(Iso2, autonomic_kb, get, [Id])) || Id <- Ids],
    peer:stop(Iso2).

late_joiner_catches_up(Config) ->
    [{_, _, A} | _] = Nodes = cluster(),
    [{ok, _} = erpc:call(A, autonomic_kb, record, [failure([<<"before_d">>, integer_to_binary(I)])])
     || I <- lists:seq(1, 20)],
    Want = ids(A),
    {_, DPeer, D} = start(kb_d, filename:join(?config(root, Config), "kb_d")),
    try
        T0 = erlang:monotonic_time(millisecond),
        ok = autonomic_ct:wait_until(fun() -> ids(D) =:= Want end, 5000),
        ct:pal("late joiner caught up with ~b records in ~b ms",
               [length(Want), erlang:monotonic_time(millisecond) - T0]),
        %% Everyone agrees, digests included.
        Digests = [erpc:call(N, autonomic_nif, kb_digest, [erpc:call(N, persistent_term, get, [{autonomic_kb, handle}])])
                   || N <- [D | [N || {_, _, N} <- Nodes]]],
        ?assertEqual(1, length(lists:usort(Digests)))
    after
        peer:stop(DPeer)
    end.

clear_reaches_every_node_and_survives_a_returning_node(Config) ->
    [{_, _, A}, {_, _, B}, {_, _, C}] = cluster(),
    EDir = filename:join(?config(root, Config), "kb_e"),
    {_, EPeer, E} = start(kb_e, EDir),
    ok = autonomic_ct:wait_until(fun() -> ids(E) =:= ids(A) end, 5000),
    ?assert(length(ids(E)) > 0),
    %% E goes down cleanly (its records stay on its disk) and misses the clear.
    peer:stop(EPeer),
    ok = erpc:call(A, autonomic_kb, clear, []),
    T0 = erlang:monotonic_time(millisecond),
    ok = autonomic_ct:wait_until(fun() -> [0, 0, 0] =:= [erpc:call(N, autonomic_kb, size, []) || N <- [A, B, C]] end, ?VISIBLE_MS),
    ct:pal("clear reached every node in ~b ms", [erlang:monotonic_time(millisecond) - T0]),
    %% E comes back with the old records on disk; it adopts the clear instead of spreading them.
    {_, EPeer2, E2} = start(kb_e2, EDir),
    try
        ok = autonomic_ct:wait_until(fun() -> erpc:call(E2, autonomic_kb, size, []) =:= 0 end, 5000),
        timer:sleep(1500),
        ?assertEqual([0, 0, 0, 0], [erpc:call(N, autonomic_kb, size, []) || N <- [A, B, C, E2]]),
        %% New knowledge flows again, from the returning node too.
        {ok, Id} = erpc:call(E2, autonomic_kb, record, [failure([<<"after_clear">>])]),
        T1 = erlang:monotonic_time(millisecond),
        [wait_visible(N, Id, T1) || N <- [A, B, C]]
    after
        peer:stop(EPeer2)
    end.

%%% Helpers

failure(Symptoms) ->
    #{failure_type => node_down, root_cause => <<"test">>, symptoms => Symptoms,
      strategy => supervisor_restart, recovery_ms => 250, success => true}.

env(Dir, Flush) ->
    [{autonomic, data_dir, Dir}, {autonomic, kb_flush_ms, Flush}, {autonomic, kb_sync_interval_ms, 1000}].

start(Name, Dir) ->
    {Peer, Node} = autonomic_ct:start_peer(Name, #{env => env(Dir, ?FLUSH_MS)}),
    #{flush_ms := ?FLUSH_MS, sync_ms := 1000} = erpc:call(Node, autonomic_kb, info, []),
    {Name, Peer, Node}.

dir(Config, Name) ->
    filename:join(?config(root, Config), atom_to_list(Name)).

%% Every owner sees the other owners (pg propagates asynchronously).
await_owners(Nodes) ->
    autonomic_ct:wait_until(
        fun() ->
            lists:all(fun(N) ->
                length(erpc:call(N, pg, get_members, [autonomic_kb_scope, owners])) =:= length(Nodes)
            end, Nodes)
        end, 5000).

%% Polls `Node' until `Id' is there; fails after ?VISIBLE_MS from `T0'. Returns the latency.
wait_visible(Node, Id, T0) ->
    case erpc:call(Node, autonomic_kb, get, [Id]) of
        {ok, _} ->
            erlang:monotonic_time(millisecond) - T0;
        {error, not_found} ->
            Elapsed = erlang:monotonic_time(millisecond) - T0,
            case Elapsed > ?VISIBLE_MS of
                true -> ct:fail({not_visible, Node, Id, Elapsed});
                false -> timer:sleep(2), wait_visible(Node, Id, T0)
            end
    end.

ids(Node) ->
    All = erpc:call(Node, autonomic_kb, similar, [[], #{threshold => 0, limit => 1000000}]),
    lists:sort([Id || {_, #{id := Id}} <- All]).

%% kill -9 of the node's OS process; returns once the node is down.
kill_9(Node) ->
    OsPid = erpc:call(Node, os, getpid, []),
    true = erlang:monitor_node(Node, true),
    _ = os:cmd("kill -9 " ++ OsPid),
    receive {nodedown, Node} -> ok after 10000 -> ct:fail({still_up, Node}) end.

%% A node with its own cookie: it reaches no other node, so whatever it knows after a restart
%% came from its disk. Controlled over stdio (peer:call).
start_isolated(Dir, FlushMs) ->
    Paths = lists:append([["-pa", P] || P <- code:get_path(), filelib:is_dir(P)]),
    Cookie = "isolated_" ++ integer_to_list(erlang:unique_integer([positive])),
    {ok, Peer, _Node} = peer:start(#{name => peer:random_name(kb_iso), connection => standard_io,
                                     args => ["-setcookie", Cookie | Paths]}),
    %% Loaded first, or loading would reset the keys of the .app file.
    ok = peer:call(Peer, application, load, [autonomic]),
    [ok = peer:call(Peer, application, set_env, [App, K, V]) || {App, K, V} <- env(Dir, FlushMs)],
    {ok, _} = peer:call(Peer, application, ensure_all_started, [autonomic]),
    [] = peer:call(Peer, erlang, nodes, []),
    #{flush_ms := FlushMs} = peer:call(Peer, autonomic_kb, info, []),
    Peer.

record_isolated(Peer, I) ->
    {ok, Id} = peer:call(Peer, autonomic_kb, record, [failure([<<"iso">>, integer_to_binary(I)])]),
    Id.

kill_9_isolated(Peer) ->
    OsPid = peer:call(Peer, os, getpid, []),
    Ref = erlang:monitor(process, Peer),
    _ = os:cmd("kill -9 " ++ OsPid),
    receive {'DOWN', Ref, process, Peer, _} -> ok after 10000 -> ct:fail(isolated_still_up) end.

found({ok, _}) -> true;
found({error, not_found}) -> false.
