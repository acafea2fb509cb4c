%%% @doc The monitor agent, one on every node: the public API of the Monitor phase, and the
%%% process that turns what the node sees into cluster events.
%%%
%%% It merges two views of the other nodes: `net_kernel''s (`nodeup', `nodedown' with its reason)
%%% and the phi-accrual detector's ({@link mape_k_heartbeat}: suspected, recovered). Events
%%% published on the cluster bus ({@link autonomic_events}):
%%% <ul>
%%%   <li>`node_up' `#{peer}', `node_down' `#{peer, reason}';</li>
%%%   <li>`node_suspected' `#{peer, phi, since_last_heartbeat_ms}' (the node is still connected
%%%       but silent: hung, stopped, overloaded), `node_recovered' `#{peer, phi, suspected_for_ms}';</li>
%%%   <li>`network_partition' `#{groups, cut_off, unresponsive, majority_unreachable, members}'
%%%       and `network_partition_healed' `#{groups}';</li>
%%%   <li>`failure_reported' (application code called {@link report_failure/1}).</li>
%%% </ul>
%%% The other parts publish their own: resources ({@link mape_k_resources}), health checks
%%% ({@link mape_k_checks}).
%%%
%%% Connectivity matrix: every monitor keeps a row per node (the nodes that node sees: connected
%%% and not suspected), versioned by its owner, and gossips the rows it holds fresh to every
%%% connected monitor each `gossip_interval_ms'. A node thus learns the row of a node it cannot
%%% reach through a node that can. Rows not refreshed within `row_ttl_ms' are stale, and a row
%%% is made stale at once when its owner goes down here. A node that went down is probed in its
%%% host's epmd: still registered means alive yet cut off (the other side of a split); not
%%% registered means it stopped or crashed, and it is forgotten. {@link mape_k_partition} turns
%%% the matrix into groups; a partition is reported once two consecutive analyses agree, so the
%%% moments when a joining node is known to some and not yet to others raise nothing.
-module(mape_k_monitor).
-behaviour(gen_server).

%% API
-export([start_link/0]).
-export([get_metrics/0, cluster_metrics/0, report_failure/1, subscribe/1, unsubscribe/1,
         connectivity/0, partitions/0, partition_status/0, node_status/0,
         register_check/3, unregister_check/1, checks/0, ingest/1]).
%% gen_server
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(LOG, #{domain => [autonomic, monitor]}).
-define(GOSSIP, mape_k_gossip).
%% epmd is asked this long after a nodedown: epmd notices a dead node's registration closing at
%% about the same moment we notice the connection closing, and must not be asked first.
-define(PROBE_DELAY_MS, 500).
-define(PROBE_TIMEOUT_MS, 2000).

-type row() :: #{version := {integer(), non_neg_integer()}, seen := [node()], received := integer(), stale := boolean()}.

-record(st, {
    incarnation :: integer(),
    counter = 0 :: non_neg_integer(),
    status = #{} :: #{node() => up | suspected},
    rows = #{} :: #{node() => row()},
    %% Nodes that went down: since when, and what their host's epmd said.
    down = #{} :: #{node() => #{since := integer(), probe := pending | alive | unreachable}},
    gossip_interval :: pos_integer(),
    row_ttl :: pos_integer(),
    forget_after :: pos_integer(),
    %% The last analysis, the candidate awaiting confirmation, and what was last published.
    analysis :: mape_k_partition:analysis() | undefined,
    pending :: mape_k_partition:analysis() | undefined,
    published_partitioned = false :: boolean()
}).

%%% API

%% @doc Starts the monitor (from the monitor's supervisor).
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc This node's figures: resources (the latest sample), peers (phi, suspicion, detector
%% statistics), node status, partitions, health checks and ingest counters.
-spec get_metrics() -> #{node := node(), at := integer(), atom() => term()}.
get_metrics() ->
    #{
        node => node(),
        at => erlang:system_time(millisecond),
        resources => mape_k_resources:latest(),
        peers => mape_k_heartbeat:peers(),
        nodes => node_status(),
        partitions => partitions(),
        checks => mape_k_checks:status(),
        ingest => mape_k_ingest:counters()
    }.

%% @doc {@link get_metrics/0} of this node and of every connected node that runs the monitor,
%% asked in parallel; a node that fails to answer within 5 s maps to `{error, Reason}'.
-spec cluster_metrics() -> #{node() => map() | {error, term()}}.
cluster_metrics() ->
    Nodes = [node() | nodes()],
    Results = erpc:multicall(Nodes, ?MODULE, get_metrics, [], 5000),
    maps:from_list(lists:zipwith(
        fun(N, {ok, M}) -> {N, M};
           (N, {error, {exception, undef, _}}) -> {N, {error, no_monitor}};
           (N, {Class, Reason}) -> {N, {error, {Class, Reason}}}
        end,
        Nodes, Results)).

%% @doc Application code reports a failure it saw (a timeout talking to a service, a crashed
%% worker). Published as a `failure_reported' event with `Detail' (a map, or any term under
%% the key `detail').
-spec report_failure(term()) -> ok.
report_failure(Detail) when is_map(Detail) ->
    _ = autonomic_events:publish(failure_reported, Detail#{reported_by => self()}),
    ok;
report_failure(Detail) ->
    report_failure(#{detail => Detail}).

%% @doc Subscribes to the event bus: `cluster' (every node's events) or `local' (this node's)
%% for the calling process, or a pid to subscribe that process to every node's events. The
%% messages are `{autonomic_event, #{type, node, at, detail}}'.
-spec subscribe(cluster | local | pid()) -> ok | {error, term()}.
subscribe(Pid) when is_pid(Pid) ->
    autonomic_events:subscribe(cluster, Pid);
subscribe(Which) ->
    autonomic_events:subscribe(Which).

%% @doc Ends the subscription of `Pid' (idempotent).
-spec unsubscribe(pid()) -> ok.
unsubscribe(Pid) when is_pid(Pid) ->
    autonomic_events:unsubscribe(Pid).

%% @doc The connectivity matrix as this node knows it: for every node whose row is fresh, the
%% nodes it sees (itself included), sorted.
-spec connectivity() -> #{node() => [node()]}.
connectivity() ->
    gen_server:call(?MODULE, connectivity).

%% @doc The groups of nodes that see each other (sorted lists, sorted); one group when the
%% cluster is whole. Nodes cut off from this node form one group together.
-spec partitions() -> [[node()]].
partitions() ->
    #{groups := Groups} = partition_status(),
    Groups.

%% @doc The full partition analysis: `partitioned', `groups', `cut_off' (down here but alive),
%% `unresponsive' (connected but suspected), `majority_unreachable' (nodes that cannot reach
%% more than half of the members) and `members'.
-spec partition_status() -> mape_k_partition:analysis().
partition_status() ->
    gen_server:call(?MODULE, partition_status).

%% @doc Every connected node and whether it is `up' or `suspected'.
-spec node_status() -> #{node() => up | suspected}.
node_status() ->
    gen_server:call(?MODULE, node_status).

%% @doc Registers (or replaces) a backend health check; see {@link mape_k_checks:register/3}.
-spec register_check(term(), mape_k_checks:check(), mape_k_checks:opts()) -> ok | {error, term()}.
register_check(Name, Check, Opts) ->
    mape_k_checks:register(Name, Check, Opts).

%% @doc Removes a health check (idempotent).
-spec unregister_check(term()) -> ok.
unregister_check(Name) ->
    mape_k_checks:unregister(Name).

%% @doc The health checks and their state.
-spec checks() -> #{term() => map()}.
checks() ->
    mape_k_checks:status().

%% @doc Ingests one raw signal; see {@link mape_k_ingest:ingest/1}.
-spec ingest(term()) -> {ok, map()} | {duplicate, binary()} | {error, term()}.
ingest(Raw) ->
    mape_k_ingest:ingest(Raw).

%%% gen_server

%% @private
-spec init([]) -> {ok, #st{}}.
init([]) ->
    ok = net_kernel:monitor_nodes(true, [nodedown_reason]),
    Interval = mape_k_config:get(gossip_interval_ms),
    St = #st{
        incarnation = erlang:system_time(microsecond),
        status = maps:from_list([{N, up} || N <- nodes()]),
        gossip_interval = Interval,
        row_ttl = mape_k_config:get(row_ttl_ms),
        forget_after = mape_k_config:get(forget_down_after_ms)
    },
    _ = erlang:send_after(Interval, self(), gossip),
    {ok, refresh_own_row(St)}.

%% @private
-spec handle_call(term(), gen_server:from(), #st{}) -> {reply, term(), #st{}}.
handle_call(connectivity, _From, St) ->
    {reply, maps:map(fun(N, #{seen := S}) -> lists:usort([N | S]) end, fresh_rows(St)), St};
handle_call(partition_status, _From, St) ->
    {reply, analyze(St), St};
handle_call(node_status, _From, #st{status = S} = St) ->
    {reply, S, St};
handle_call(_Req, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @private
-spec handle_cast(term(), #st{}) -> {noreply, #st{}}.
handle_cast({detector, suspected, Node, Detail}, #st{status = S} = St) ->
    case S of
        #{Node := up} ->
            publish(node_suspected, Detail#{peer => Node}),
            logger:warning("node ~p suspected: phi ~.2f, silent for ~b ms",
                           [Node, maps:get(phi, Detail), maps:get(since_last_heartbeat_ms, Detail)], ?LOG),
            %% Its row says what it saw before it fell silent: no evidence about now. A newer
            %% version gossiped by a node that still hears it makes it fresh again.
            St1 = St#st{status = S#{Node := suspected}, rows = stale_row(Node, St#st.rows)},
            {noreply, gossip_now(refresh_own_row(St1))};
        _ ->
            %% Already down (net_kernel was faster) or already suspected.
            {noreply, St}
    end;
handle_cast({detector, recovered, Node, Detail}, #st{status = S} = St) ->
    case S of
        #{Node := suspected} ->
            publish(node_recovered, Detail#{peer => Node}),
            logger:notice("node ~p recovered after ~b ms", [Node, maps:get(suspected_for_ms, Detail)], ?LOG),
            {noreply, gossip_now(refresh_own_row(St#st{status = S#{Node := up}}))};
        _ ->
            {noreply, St}
    end;
handle_cast(_Msg, St) ->
    {noreply, St}.

%% @private
-spec handle_info(term(), #st{}) -> {noreply, #st{}}.
handle_info({nodeup, Node, _Info}, #st{status = S, down = Down} = St) ->
    publish(node_up, #{peer => Node}),
    St1 = St#st{status = S#{Node => up}, down = maps:remove(Node, Down)},
    {noreply, gossip_now(refresh_own_row(St1))};
handle_info({nodedown, Node, Info}, #st{status = S, rows = Rows, down = Down} = St) ->
    Reason = proplists:get_value(nodedown_reason, Info, unknown),
    publish(node_down, #{peer => Node, reason => Reason}),
    logger:warning("node ~p down: ~p", [Node, Reason], ?LOG),
    Rows1 = stale_row(Node, Rows),
    _ = erlang:send_after(?PROBE_DELAY_MS, self(), {probe, Node}),
    Now = now_ms(),
    St1 = St#st{status = maps:remove(Node, S), rows = Rows1,
                down = Down#{Node => #{since => Now, probe => pending}}},
    {noreply, refresh_own_row(St1)};
handle_info({probe, Node}, #st{down = Down} = St) ->
    case Down of
        #{Node := _} -> ok = probe(Node);
        #{} -> ok
    end,
    {noreply, St};
handle_info({probe_result, Node, Result}, #st{down = Down} = St) ->
    case {Down, Result} of
        {#{Node := _}, dead} ->
            {noreply, St#st{down = maps:remove(Node, Down)}};
        {#{Node := D}, _} ->
            {noreply, St#st{down = Down#{Node := D#{probe := Result}}}};
        _ ->
            {noreply, St}
    end;
handle_info(gossip, #st{gossip_interval = I} = St) ->
    _ = erlang:send_after(I, self(), gossip),
    St1 = gossip_now(refresh_own_row(prune_rows(forget_old_down(St)))),
    %% Down nodes are asked again each round: a cut-off node that stops is forgotten.
    _ = [ok = probe(N) || {N, #{probe := P}} <- maps:to_list(St1#st.down), P =/= pending],
    {noreply, evaluate(St1)};
handle_info({?GOSSIP, _From, Rows}, St) when is_map(Rows) ->
    {noreply, merge_rows(Rows, St)};
handle_info(_Other, St) ->
    {noreply, St}.

%%% Internals: matrix

refresh_own_row(#st{incarnation = Inc, counter = C, status = S, rows = Rows} = St) ->
    Seen = lists:sort([node() | [N || {N, up} <- maps:to_list(S)]]),
    Row = #{version => {Inc, C + 1}, seen => Seen, received => now_ms(), stale => false},
    St#st{counter = C + 1, rows = Rows#{node() => Row}}.

stale_row(Node, Rows) ->
    case Rows of
        #{Node := R} -> Rows#{Node := R#{stale := true}};
        #{} -> Rows
    end.

fresh_rows(#st{rows = Rows, row_ttl = Ttl}) ->
    Now = now_ms(),
    maps:filter(fun(N, #{received := R, stale := S}) -> N =:= node() orelse (not S andalso Now - R < Ttl) end, Rows).

%% Rows of nodes that are neither connected nor remembered as down are dropped once no node can
%% still hold them fresh (two row lifetimes): a cluster with churn does not accumulate rows.
prune_rows(#st{rows = Rows, status = S, down = Down, row_ttl = Ttl} = St) ->
    Now = now_ms(),
    St#st{rows = maps:filter(
        fun(N, #{received := R}) ->
            N =:= node() orelse is_map_key(N, S) orelse is_map_key(N, Down) orelse Now - R < 2 * Ttl
        end, Rows)}.

gossip_now(St) ->
    Payload = maps:map(fun(_, #{version := V, seen := S}) -> #{version => V, seen => S} end, fresh_rows(St)),
    Msg = {?GOSSIP, node(), Payload},
    _ = [erlang:send({?MODULE, N}, Msg, [noconnect, nosuspend]) || N <- nodes()],
    St.

merge_rows(Incoming, #st{rows = Rows} = St) ->
    Now = now_ms(),
    Rows1 = maps:fold(
        fun(N, _, Acc) when N =:= node() ->
                Acc;
           (N, #{version := V, seen := Seen}, Acc) when is_list(Seen) ->
                case Acc of
                    #{N := #{version := Old}} when Old >= V -> Acc;
                    _ -> Acc#{N => #{version => V, seen => Seen, received => Now, stale => false}}
                end;
           (_, _, Acc) ->
                Acc
        end,
        Rows, Incoming),
    St#st{rows = Rows1}.

forget_old_down(#st{down = Down, forget_after = F} = St) ->
    Now = now_ms(),
    St#st{down = maps:filter(fun(_, #{since := T}) -> Now - T < F end, Down)}.

%% Asks the node's host's epmd, off this process, whether the node is still registered.
probe(Node) ->
    Self = self(),
    _ = spawn(fun() -> Self ! {probe_result, Node, epmd_status(Node)} end),
    ok.

epmd_status(Node) ->
    case string:split(atom_to_list(Node), "@") of
        [Name, Host] ->
            try erl_epmd:port_please(Name, Host, ?PROBE_TIMEOUT_MS) of
                {port, _, _} -> alive;
                noport -> dead;
                _ -> unreachable
            catch
                _:_ -> unreachable
            end;
        _ ->
            unreachable
    end.

analyze(#st{status = S, down = Down} = St) ->
    Rows = maps:map(fun(_, #{seen := Seen}) -> Seen end, fresh_rows(St)),
    mape_k_partition:analyze(#{
        rows => Rows,
        cut_off => [N || {N, #{probe := P}} <- maps:to_list(Down), P =/= pending],
        unresponsive => [N || {N, suspected} <- maps:to_list(S)]
    }).

%% A partition is published once two consecutive analyses (a gossip interval apart) agree.
evaluate(#st{pending = Pending, published_partitioned = Was} = St) ->
    A = analyze(St),
    Confirmed = Pending =/= undefined andalso same(A, Pending),
    St1 = St#st{pending = A},
    #{partitioned := Now} = A,
    case Confirmed of
        false ->
            St1;
        true when Now, not Was ->
            publish(network_partition, maps:without([partitioned], A)),
            logger:error("network partition: groups ~p", [maps:get(groups, A)], ?LOG),
            metrics_partitioned(A),
            St1#st{analysis = A, published_partitioned = true};
        true when Now, Was ->
            case same(A, St#st.analysis) of
                true -> St1;
                false ->
                    publish(network_partition, maps:without([partitioned], A)),
                    logger:error("network partition changed: groups ~p", [maps:get(groups, A)], ?LOG),
                    metrics_partitioned(A),
                    St1#st{analysis = A}
            end;
        true when not Now, Was ->
            publish(network_partition_healed, #{groups => maps:get(groups, A)}),
            logger:notice("network partition healed", [], ?LOG),
            metrics_partitioned(A),
            St1#st{analysis = A, published_partitioned = false};
        true ->
            metrics_partitioned(A),
            St1#st{analysis = A}
    end.

same(#{partitioned := P, groups := G}, #{partitioned := P, groups := G}) -> true;
same(_, _) -> false.

metrics_partitioned(#{partitioned := P, groups := G}) ->
    ok = autonomic_metrics:set(autonomic_partitioned, #{}, case P of true -> 1; false -> 0 end),
    autonomic_metrics:set(autonomic_partition_groups, #{}, length(G)).

publish(Type, Detail) ->
    _ = autonomic_events:publish(Type, Detail),
    ok.

now_ms() ->
    erlang:monotonic_time(millisecond).
