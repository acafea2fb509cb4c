%%% @doc Helpers shared by the Common Test suites: making the test node distributed and starting
%%% real peer nodes (OTP's `peer') that run autonomic with the same code paths.
-module(autonomic_ct).

-export([ensure_distributed/0, start_peer/1, start_peer/2, await_members/2, wait_until/2]).

%% @doc Makes the test node distributed (short names) if it is not already.
-spec ensure_distributed() -> ok.
ensure_distributed() ->
    case node() of
        nonode@nohost ->
            _ = os:cmd("epmd -daemon"),
            Name = list_to_atom("ct_" ++ os:getpid()),
            {ok, _} = net_kernel:start([Name, shortnames]),
            ok;
        _ ->
            ok
    end.

%% @doc Starts a peer node named after `Prefix' running autonomic; returns `{PeerPid, Node}'.
-spec start_peer(atom()) -> {pid(), node()}.
start_peer(Prefix) ->
    start_peer(Prefix, #{}).

%% @doc As {@link start_peer/1}; `Opts' may hold `apps' (started in order, default
%% `[autonomic]'), `env' (`[{App, Key, Value}]' set before the apps start), `args', and
%% `connect' (default `true'; `false' leaves the peer unconnected to this node).
-spec start_peer(atom(), map()) -> {pid(), node()}.
start_peer(Prefix, Opts) ->
    Name = peer:random_name(Prefix),
    Paths = lists:append([["-pa", P] || P <- code:get_path(), filelib:is_dir(P)]),
    %% Not linked: Common Test runs init_per_suite in a process that exits right after.
    {ok, Peer, Node} = peer:start(#{
        name => Name,
        args => ["-setcookie", atom_to_list(erlang:get_cookie()) | Paths] ++ maps:get(args, Opts, []),
        connection => standard_io
    }),
    %% standard_io keeps the control channel off the distribution, so cutting the peer's
    %% distribution links in a test never cuts the test's control over it. Everything below goes
    %% through it, so a peer started with `connect => false' is prepared before it meets anyone.
    maps:get(connect, Opts, true) andalso (pong = net_adm:ping(Node)),
    %% Loaded first: loading an application sets the keys of its .app file, overwriting any
    %% value set before.
    [load(Peer, App) || {App, _, _} <- maps:get(env, Opts, [])],
    [ok = peer:call(Peer, application, set_env, [App, Key, Value]) || {App, Key, Value} <- maps:get(env, Opts, [])],
    [{ok, _} = peer:call(Peer, application, ensure_all_started, [App], 60000) || App <- maps:get(apps, Opts, [autonomic])],
    {Peer, Node}.

load(Peer, App) ->
    case peer:call(Peer, application, load, [App]) of
        ok -> ok;
        {error, {already_loaded, App}} -> ok
    end.

%% @doc Waits until `Node' sees `N' cluster subscribers in the event bus (pg propagates
%% asynchronously).
-spec await_members(node(), non_neg_integer()) -> ok.
await_members(Node, N) ->
    wait_until(fun() -> length(erpc:call(Node, pg, get_members, [autonomic_events:scope(), cluster])) =:= N end, 5000).

%% @doc Polls `Fun' every 10 ms until it returns true, or fails after `Timeout' ms.
-spec wait_until(fun(() -> boolean()), non_neg_integer()) -> ok.
wait_until(Fun, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    wait_until_(Fun, Deadline).

wait_until_(Fun, Deadline) ->
    case Fun() of
        true -> ok;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> error(timeout);
                false -> timer:sleep(10), wait_until_(Fun, Deadline)
            end
    end.
