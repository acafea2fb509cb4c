%%% @doc The quorum manager, one on every node: membership with weighted voting, a minority mode
%%% that fences the node, and the failure handler that removes lost members and restores them.
%%%
%%% <h3>What it holds</h3>
%%% The committed configuration (epoch, members with weights, standby nodes) and the Paxos
%%% acceptor for the next epoch, both persisted by {@link quorum_store} before any answer that
%%% depends on them; what each reachable peer last said about itself (its epoch, configuration and
%%% pending values, with a sequence number per incarnation); which peers the monitor suspects; and
%%% since when each member has been up or down here.
%%%
%%% <h3>Changes by vote</h3>
%%% {@link propose_membership_change/2} validates the change ({@link quorum_rules:validate_change/4})
%%% and runs a proposer ({@link quorum_proposer}) in its own process: a prepare/accept round of
%%% single-decree Paxos ({@link quorum_paxos}) for epoch `E + 1' among the members of epoch `E',
%%% each voting with its weight, committed only with a weighted majority, then learned by every
%%% reachable node. One change at a time, cluster-wide:
%%% <ul>
%%%   <li>a member promises one proposal per epoch at a time: while its promise to a proposal is
%%%       live (until that proposal commits, is abandoned, its proposer process dies, or
%%%       `promise_lease_ms' passes) it answers `busy' to every other, and a proposer without a
%%%       weighted majority of promises gives up with `{error, change_in_progress}'. Two proposals
%%%       racing for one epoch split the members' promises, so at most one gets a majority;</li>
%%%   <li>safety does not rest on the lease: promises and accepted values follow Paxos, so even when
%%%       leases expire under a slow proposer at most one value is ever chosen per epoch, and a
%%%       later proposer that finds a value accepted completes it instead of its own (and answers
%%%       `change_in_progress');</li>
%%%   <li>a proposal made against an old epoch is answered `stale' by the members, and its node
%%%       catches up.</li>
%%% </ul>
%%% Before a member accepts a value it tells every peer it reaches and waits until each has taken
%%% note (or is gone): that is what lets a group still at the old epoch see the change coming and
%%% stop claiming quorum for it ({@link quorum_rules}, module doc). If a reachable peer does not
%%% answer in time, the member refuses to accept. Peers the monitor suspects get the news as an
%%% ordinary state message and are not waited for: a hung peer must not stall every vote.
%%%
%%% <h3>Quorum, minority and the fence</h3>
%%% After every event (and at least every `check_interval_ms') the manager evaluates
%%% {@link quorum_rules:evaluate/1}. Without quorum it is in `minority' mode: it publishes
%%% `minority_entered' and raises the node's fence ({@link autonomic:set_fence/1}), so the
%%% governor refuses every action there; with quorum again it publishes `minority_left' and lowers
%%% it. `get_quorum_status/0' evaluates afresh against the live connection list, so it never
%%% reports a peer whose connection is already gone.
%%%
%%% <h3>Autoheal</h3>
%%% Every manager tells each peer its state when they connect and whenever its epoch or pending
%%% values change. A node that hears of a higher epoch adopts that configuration at once (it is
%%% committed, so adopting it is always safe): after a partition heals, the minority converges on
%%% the highest committed epoch within a message round trip.
%%%
%%% <h3>Reconnection</h3>
%%% Erlang does not reconnect nodes by itself. Every `reconnect_interval_ms' each manager tries
%%% to connect to the members and standby nodes it is not connected to (each attempt in a
%%% process of its own), so a node that starts joins its cluster and a cluster heals as soon as
%%% the network lets it. A node removed by hand is neither, and is left alone.
%%%
%%% <h3>Node loss and rejoin</h3>
%%% The leader ({@link quorum_leader}; or, while the name's holder is out of reach, the node the
%%% leader rule picks) runs the failure handler ({@link quorum_rules:plan/3}):
%%% members down (or suspected) for `grace_period_ms' are removed (as many as is safe) and go on
%%% standby; standby nodes back for `rejoin_after_ms' are restored with their weights. A value left
%%% accepted but unfinished (its proposer died) is completed by the node that would lead, once
%%% no proposal has held it for `promise_lease_ms'.
-module(quorum_manager).
-behaviour(gen_server).

%% API
-export([start_link/0, get_quorum_status/0, propose_membership_change/2, propose_membership_change/3,
         info/0, leader/0]).
%% Protocol entry points, called on this node by other nodes' managers and proposers (erpc).
-export([vote/1, learn/1, notice/1]).
%% gen_server
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-export_type([status/0]).

-define(LOG, #{domain => [autonomic, quorum]}).

-type status() :: #{epoch := non_neg_integer(), members := [node()], reachable := [node()],
                    quorum_size := pos_integer(), have_quorum := boolean(), leader := node() | undefined,
                    mode := quorum_rules:mode()}.

-type peer_view() :: #{epoch := non_neg_integer(), config := quorum_rules:config(),
                       pending := [quorum_rules:config()]}.

-record(peer, {pid :: pid(), mref :: reference(), seq :: non_neg_integer(), view :: peer_view()}).

-record(st, {
    path :: file:filename(),
    opts :: map(),
    config :: quorum_rules:config(),
    acceptor :: quorum_paxos:acceptor(),
    %% The proposal this acceptor's promise belongs to: other proposals get `busy' until it ends.
    lease :: undefined | #{ballot := quorum_paxos:ballot(), mref := reference(), expires := integer()},
    %% An accept waiting for the peers to take note of it.
    intent :: undefined | #{ballot := quorum_paxos:ballot(), value := quorum_rules:config(),
                            from := gen_server:from(), ref := reference()},
    seq = 0 :: non_neg_integer(),
    advertised :: peer_view() | undefined,
    peers = #{} :: #{node() => #peer{}},
    suspected = #{} :: #{node() => true},
    health = #{} :: quorum_rules:health(),
    proposal :: undefined | #{pid := pid(), mref := reference(), kind := atom(),
                              from := gen_server:from() | none},
    %% No automatic proposal before this (monotonic ms) after one failed.
    retry_at :: integer() | undefined,
    max_round = 0 :: non_neg_integer(),
    eval :: quorum_rules:evaluation() | undefined,
    mode :: quorum_rules:mode() | undefined,
    mode_since :: integer(),
    %% Since when this node has had quorum (monotonic ms), or undefined.
    quorum_since :: integer() | undefined,
    pending_since :: integer() | undefined,
    learned_at :: integer(),
    last_commit :: map() | undefined,
    timer :: undefined | {reference(), integer()},
    %% Connection attempts under way to members and standby nodes that are not connected.
    connecting = #{} :: #{reference() => node()},
    next_connect :: integer() | undefined
}).

%%% API

%% @doc Starts the manager (from {@link autonomic_quorum_sup}).
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc This node's view of the quorum:
%% <ul>
%%   <li>`epoch', `members': the committed configuration this node holds (members sorted);</li>
%%   <li>`reachable': the nodes running a quorum manager that this node reaches now (connected,
%%       not suspected, heard from since they connected), itself included, members or not;</li>
%%   <li>`quorum_size': the weight a majority of the members needs;</li>
%%   <li>`have_quorum': whether this node may act (see {@link quorum_rules:evaluate/1});</li>
%%   <li>`leader': the leader's node while this node has quorum and reaches it, else `undefined';</li>
%%   <li>`mode': `normal', `reconfiguring' (a change is under way) or `minority' (no quorum: the
%%       node is fenced).</li>
%% </ul>
-spec get_quorum_status() -> status().
get_quorum_status() ->
    gen_server:call(?MODULE, status).

%% @doc Proposes adding the nodes in `Add' (`Node' or `{Node, Weight}', weight a positive integer,
%% default 1; each must be connected) and removing the members in `Remove' (standby nodes named
%% there are forgotten). Committed only when a weighted majority of the current members accept it;
%% then the epoch is one higher on every node that learns it, and on disk.
%%
%% Returns `{ok, Epoch}' once committed, or `{error, Reason}': bad input (nothing changes; see
%% {@link quorum_rules:validate_change/4}), `change_in_progress' (another change holds or took
%% this epoch; read the status and retry), `no_quorum' (too few members answered), or
%% `{outcome_unknown, Detail}' (some members accepted but not a majority before the vote ended:
%% the change may still be completed by the leader; the status tells).
-spec propose_membership_change(Add :: [node() | {node(), pos_integer()}], Remove :: [node()]) ->
    {ok, pos_integer()} | {error, term()}.
propose_membership_change(Add, Remove) ->
    propose_membership_change(Add, Remove, #{}).

%% @doc As {@link propose_membership_change/2}, with `Opts': `reason' is `manual' (the default: the
%% removed members are forgotten, as an operator removing a node means) or `node_loss' (the
%% removed members go on standby with their weights and are restored by the failure handler once
%% they are back for `rejoin_after_ms', exactly as if the failure handler had removed them: the
%% self-healing loop removes lost nodes this way). Anything else in `Opts' is
%% `{error, {invalid_option, Key, Value}}' and changes nothing.
-spec propose_membership_change(Add :: [node() | {node(), pos_integer()}], Remove :: [node()],
                                #{reason => manual | node_loss}) ->
    {ok, pos_integer()} | {error, term()}.
propose_membership_change(Add, Remove, Opts) ->
    case proposal_reason(Opts) of
        {ok, Reason} ->
            Vote = quorum_config:get(vote_timeout_ms),
            gen_server:call(?MODULE, {propose, Add, Remove, Reason}, 4 * Vote + 5000);
        {error, _} = Error ->
            Error
    end.

proposal_reason(Opts) when is_map(Opts) ->
    case maps:to_list(maps:without([reason], Opts)) of
        [] ->
            case maps:get(reason, Opts, manual) of
                R when R =:= manual; R =:= node_loss -> {ok, R};
                Bad -> {error, {invalid_option, reason, Bad}}
            end;
        [{K, V} | _] ->
            {error, {invalid_option, K, V}}
    end;
proposal_reason(Opts) ->
    {error, {invalid_option, options, Opts}}.

%% @doc Everything the manager knows, for operators and tests: the configuration with weights and
%% standby nodes, the acceptor, the peers' views, suspicions, health, the running proposal, the
%% last change this node committed and when this node learned its epoch (`learned_at', OS
%% system time in ms).
-spec info() -> map().
info() ->
    gen_server:call(?MODULE, info).

%% @doc The leader's node as this node sees it (see {@link get_quorum_status/0}).
-spec leader() -> node() | undefined.
leader() ->
    maps:get(leader, get_quorum_status()).

%% @private Runs a vote request of a proposer on this node's acceptor.
-spec vote(term()) -> term().
vote({_, _, _, _, _, Timeout} = Req) when is_integer(Timeout) ->
    call_local({vote, Req}, Timeout);
vote(Req) ->
    call_local({vote, Req}, 1000).

%% @private A committed configuration, sent by the proposer that committed it.
-spec learn(quorum_rules:config()) -> ok | {error, term()}.
learn(Config) ->
    call_local({learn, Config}, 5000).

%% @private A peer's new state, sent before it accepts a value; answered once noted.
-spec notice({node(), pid(), non_neg_integer(), peer_view()}) -> ok | not_running.
notice(Msg) ->
    case call_local({notice, Msg}, 5000) of
        {error, not_running} -> not_running;
        Other -> Other
    end.

call_local(Req, Timeout) ->
    try
        gen_server:call(?MODULE, Req, Timeout)
    catch
        exit:{noproc, _} -> {error, not_running};
        exit:{timeout, _} -> {error, timeout};
        exit:{Reason, _} -> {error, Reason}
    end.

%%% gen_server

%% @private
-spec init([]) -> {ok, #st{}} | {stop, term()}.
init([]) ->
    Opts = maps:from_list([{K, quorum_config:get(K)} || K <- maps:keys(quorum_config:defaults())]),
    {ok, Configured} = quorum_config:members(),
    Path = quorum_store:path(),
    case load(Path, Configured) of
        {ok, Config, Acceptor} ->
            ok = net_kernel:monitor_nodes(true),
            ok = autonomic_events:subscribe(local),
            Now = now_ms(),
            St0 = #st{path = Path, opts = Opts, config = Config, acceptor = Acceptor,
                      suspected = initially_suspected(), mode_since = Now,
                      learned_at = os:system_time(millisecond),
                      health = maps:from_list([{N, {down, Now}} || N <- interesting(Config)])},
            St1 = lists:foldl(fun(N, S) -> hello(N, S) end, St0, nodes()),
            logger:notice("quorum manager started at epoch ~b, members ~p", [epoch(Config), members(Config)], ?LOG),
            {ok, refresh(St1)};
        {error, Reason} ->
            logger:error("quorum state file ~ts unusable: ~p", [Path, Reason], ?LOG),
            {stop, {bad_state_file, Path, Reason}}
    end.

load(Path, Configured) ->
    case quorum_store:load(Path) of
        {ok, #{config := Config, acceptor := Acceptor}} ->
            case maps:get(members, Config) =:= Configured orelse epoch(Config) > 0 of
                true -> ok;
                false -> logger:notice("configured members differ from the saved epoch 0; the saved ones hold", [], ?LOG)
            end,
            {ok, Config, Acceptor};
        {ok, Other} ->
            {error, {unexpected_content, Other}};
        none ->
            %% Nothing is written until the first vote: a node that never takes part in a change
            %% leaves no file behind.
            {ok, #{epoch => 0, members => Configured, standby => #{}}, quorum_paxos:new(1)};
        {error, _} = E ->
            E
    end.

initially_suspected() ->
    try mape_k_monitor:node_status() of
        Status -> maps:from_list([{N, true} || {N, suspected} <- maps:to_list(Status)])
    catch
        exit:_ -> #{}
    end.

%% @private
-spec handle_call(term(), gen_server:from(), #st{}) ->
    {reply, term(), #st{}} | {noreply, #st{}}.
handle_call(status, _From, St) ->
    St1 = refresh(St),
    {reply, status(St1), St1};
handle_call(info, _From, St) ->
    St1 = refresh(St),
    {reply, info(St1), St1};
handle_call({propose, Add, Remove, Reason}, From, #st{config = Config} = St) ->
    case quorum_rules:validate_change(Config, Add, Remove, [node() | nodes()]) of
        {error, _} = Error ->
            {reply, Error, St};
        {ok, Change} ->
            #{pending := Pending} = St#st.eval,
            case St#st.proposal =:= undefined andalso Pending =:= [] of
                true -> {noreply, refresh(start_proposal({Reason, Change}, From, St))};
                false -> {reply, {error, change_in_progress}, St}
            end
    end;
handle_call({vote, Req}, From, St) ->
    case handle_vote(Req, From, St) of
        {reply, Reply, St1} -> {reply, Reply, refresh(St1)};
        {noreply, St1} -> {noreply, refresh(St1)}
    end;
handle_call({learn, Config}, _From, St) ->
    {Reply, St1} = learn_config(Config, commit, St),
    {reply, Reply, refresh(St1)};
handle_call({notice, {Node, Pid, Seq, View}}, _From, St) ->
    {reply, ok, refresh(record_peer(Node, Pid, Seq, View, St))};
handle_call(_Req, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @private
-spec handle_cast(term(), #st{}) -> {noreply, #st{}}.
handle_cast(_Msg, St) ->
    {noreply, St}.

%% @private
-spec handle_info(term(), #st{}) -> {noreply, #st{}}.
handle_info({nodeup, Node}, St) ->
    %% Whatever we held about Node belongs to the old connection: forget it and ask afresh.
    {noreply, refresh(hello(Node, forget_peer(Node, St)))};
handle_info({nodedown, Node}, #st{lease = Lease} = St) ->
    St1 = case Lease of
        #{ballot := {_, Node, _}} -> clear_lease(St);
        _ -> St
    end,
    {noreply, refresh(forget_peer(Node, St1#st{suspected = maps:remove(Node, St#st.suspected)}))};
handle_info({quorum_state, Node, Pid, Seq, View, Kind}, St) when is_atom(Node), is_pid(Pid), node(Pid) =:= Node ->
    St1 = record_peer(Node, Pid, Seq, View, St),
    St2 = case Kind of
        hello -> send_state(Node, reply, St1);
        _ -> St1
    end,
    {noreply, refresh(St2)};
handle_info({autonomic_event, #{type := node_suspected, detail := #{peer := N}}}, St) ->
    {noreply, refresh(St#st{suspected = (St#st.suspected)#{N => true}})};
handle_info({autonomic_event, #{type := Type, detail := #{peer := N}}}, St) when Type =:= node_recovered; Type =:= node_down ->
    {noreply, refresh(St#st{suspected = maps:remove(N, St#st.suspected)})};
handle_info({autonomic_event, _}, St) ->
    {noreply, St};
handle_info({notified, Ref, Failed}, #st{intent = #{ref := Ref}} = St) ->
    {noreply, refresh(finish_accept(Failed, St))};
handle_info({notified, _Ref, _Failed}, St) ->
    {noreply, St};
handle_info({proposal_done, Pid, Outcome, Detail}, #st{proposal = #{pid := Pid, mref := MRef}} = St) ->
    erlang:demonitor(MRef, [flush]),
    {noreply, refresh(proposal_finished(Outcome, Detail, St))};
handle_info({'DOWN', MRef, process, _, Reason}, #st{proposal = #{mref := MRef, from := From}} = St) ->
    logger:error("quorum proposer crashed: ~p", [Reason], ?LOG),
    _ = From =/= none andalso gen_server:reply(From, {error, {proposer_crashed, Reason}}),
    {noreply, refresh(St#st{proposal = undefined, retry_at = now_ms() + opt(check_interval_ms, St)})};
handle_info({'DOWN', MRef, process, _, _}, #st{lease = #{mref := MRef}} = St) ->
    %% The proposer our promise was for is gone: the epoch is open to others again.
    {noreply, refresh(St#st{lease = undefined})};
handle_info({'DOWN', MRef, process, _, _}, #st{connecting = Connecting} = St) when is_map_key(MRef, Connecting) ->
    {noreply, St#st{connecting = maps:remove(MRef, Connecting)}};
handle_info({'DOWN', MRef, process, _, _}, #st{peers = Peers} = St) ->
    %% A peer's manager stopped: what it said no longer holds.
    case [N || {N, #peer{mref = M}} <- maps:to_list(Peers), M =:= MRef] of
        [Node] -> {noreply, refresh(St#st{peers = maps:remove(Node, Peers)})};
        [] -> {noreply, St}
    end;
handle_info(tick, St) ->
    {noreply, refresh(St#st{timer = undefined})};
handle_info(_Other, St) ->
    {noreply, St}.

%%% Votes (the acceptor)

handle_vote({prepare, Slot, Ballot, Config, Proposer, _Timeout}, _From, St0) ->
    St = catch_up(Config, St0),
    case vote_check(Slot, Config, Ballot, St) of
        ok ->
            case quorum_paxos:prepare(St#st.acceptor, Ballot) of
                {promise, Accepted, Acc1} ->
                    case persist(St#st{acceptor = Acc1}) of
                        {ok, St1} -> {reply, {promise, Accepted}, set_lease(Ballot, Proposer, St1)};
                        {error, R} -> {reply, {error, {persist, R}}, St}
                    end;
                {reject, Promised} ->
                    {reply, {reject, Promised}, St}
            end;
        Refusal ->
            {reply, Refusal, St}
    end;
handle_vote({accept, Slot, Ballot, Value, Config, _Timeout}, From, St0) ->
    St = catch_up(Config, St0),
    case vote_check(Slot, Config, Ballot, St) of
        ok when map_get(epoch, Value) =/= Slot ->
            {reply, {error, bad_value}, St};
        ok ->
            case quorum_paxos:check_accept(St#st.acceptor, Ballot) of
                ok -> {noreply, start_accept(Ballot, Value, From, St)};
                {reject, Promised} -> {reply, {reject, Promised}, St}
            end;
        Refusal ->
            {reply, Refusal, St}
    end;
handle_vote({abandon, Slot, Ballot}, _From, #st{lease = Lease, acceptor = Acc} = St) ->
    case Lease of
        #{ballot := Ballot} when Slot =:= map_get(slot, Acc) -> {reply, ok, clear_lease(St)};
        _ -> {reply, ok, St}
    end;
handle_vote(_Other, _From, St) ->
    {reply, {error, bad_request}, St}.

%% A vote request carries the proposer's committed configuration: if it is newer, it is ours now.
catch_up(Config, #st{config = Mine} = St) ->
    case is_map(Config) andalso quorum_rules:compare(Config, Mine) of
        newer -> element(2, adopt(Config, catch_up, St));
        _ -> St
    end.

vote_check(Slot, Config, Ballot, #st{config = Mine, intent = Intent, lease = Lease}) ->
    Now = now_ms(),
    E = epoch(Mine),
    if
        Slot =< E -> {stale, Mine};
        Slot =/= E + 1 -> {error, behind};
        true ->
            case quorum_rules:compare(Config, Mine) of
                same when not is_map_key(node(), map_get(members, Mine)) -> {error, not_member};
                same when Intent =/= undefined -> {busy, accepting};
                same ->
                    case Lease of
                        #{ballot := B, expires := X} when B =/= Ballot, X > Now -> {busy, B};
                        _ -> ok
                    end;
                _ -> {error, config_mismatch}
            end
    end.

set_lease(Ballot, Proposer, #st{lease = Lease} = St) ->
    case Lease of
        #{ballot := Ballot} -> St;
        _ ->
            St1 = clear_lease(St),
            St1#st{lease = #{ballot => Ballot, mref => erlang:monitor(process, Proposer),
                             expires => now_ms() + opt(promise_lease_ms, St)}}
    end.

clear_lease(#st{lease = undefined} = St) ->
    St;
clear_lease(#st{lease = #{mref := MRef}} = St) ->
    erlang:demonitor(MRef, [flush]),
    St#st{lease = undefined}.

%% Phase 2 at this acceptor: first every reachable peer learns that we are about to accept
%% (the value shows in our pending values), then we accept, persist and answer.
start_accept(Ballot, Value, From, #st{suspected = Suspected} = St) ->
    Ref = make_ref(),
    St1 = St#st{intent = #{ballot => Ballot, value => Value, from => From, ref => Ref}},
    {{_, _, Seq, View} = Msg, St2} = new_state_msg(St1),
    %% Suspected peers are not waited for (a hung one would hold every accept up); they get the
    %% news as an ordinary state message, which they read before anything we send later.
    {Hung, Targets} = lists:partition(fun(N) -> is_map_key(N, Suspected) end, nodes()),
    _ = [erlang:send({?MODULE, N}, {quorum_state, node(), self(), Seq, View, update}, [noconnect]) || N <- Hung],
    Self = self(),
    Timeout = opt(vote_timeout_ms, St) div 2,
    _ = spawn(fun() -> notify(Self, Ref, Targets, Msg, Timeout) end),
    St2.

notify(Manager, Ref, Targets, Msg, Timeout) ->
    Results = erpc:multicall(Targets, ?MODULE, notice, [Msg], Timeout),
    Failed = [N || {N, R} <- lists:zip(Targets, Results), not noted(R)],
    Manager ! {notified, Ref, Failed}.

noted({ok, ok}) -> true;
noted({ok, not_running}) -> true;
noted({error, {erpc, noconnection}}) -> true;
noted({error, {exception, undef, _}}) -> true;
noted(_) -> false.

finish_accept(Failed, #st{intent = #{ballot := Ballot, value := Value, from := From}} = St) ->
    Live = nodes(),
    Blocking = [N || N <- Failed, lists:member(N, Live), not is_map_key(N, St#st.suspected)],
    case Blocking of
        [] ->
            case persist(St#st{acceptor = quorum_paxos:accept(St#st.acceptor, Ballot, Value), intent = undefined}) of
                {ok, St1} ->
                    gen_server:reply(From, {accepted, Ballot}),
                    St1;
                {error, R} ->
                    gen_server:reply(From, {error, {persist, R}}),
                    St#st{intent = undefined}
            end;
        _ ->
            logger:warning("not accepting a change: peers ~p did not take note in time", [Blocking], ?LOG),
            gen_server:reply(From, {error, {peers_not_noted, Blocking}}),
            St#st{intent = undefined}
    end.

%%% Learning and adopting configurations

learn_config(Config, How, #st{config = Mine} = St) ->
    case quorum_rules:compare(Config, Mine) of
        newer -> {ok, element(2, adopt(Config, How, St))};
        same -> {ok, St};
        older -> {{error, stale}, St};
        conflict ->
            logger:error("two configurations for epoch ~b: ours ~p, offered ~p", [epoch(Mine), Mine, Config], ?LOG),
            {{error, conflict}, St}
    end.

%% A committed configuration replaces ours; the acceptor moves on to the next epoch.
adopt(Config, How, #st{config = Old, intent = Intent} = St0) ->
    St1 = clear_lease(St0),
    case Intent of
        #{from := From} -> gen_server:reply(From, {stale, Config});
        undefined -> ok
    end,
    St2 = St1#st{config = Config, acceptor = quorum_paxos:new(epoch(Config) + 1), intent = undefined,
                 learned_at = os:system_time(millisecond)},
    St3 = case persist(St2) of
        {ok, S} -> S;
        {error, R} ->
            %% Still safe: the acceptor state for the decided epoch stays on disk, and a restarted
            %% node learns the newer configuration again from its peers.
            logger:error("could not save epoch ~b: ~p", [epoch(Config), R], ?LOG),
            St2
    end,
    _ = How =/= commit andalso
            autonomic_events:publish(epoch_adopted, #{from_epoch => epoch(Old), epoch => epoch(Config),
                                                      members => members(Config), via => How}),
    logger:notice("epoch ~b: members ~p (was ~b, ~p; via ~p)",
                  [epoch(Config), members(Config), epoch(Old), members(Old), How], ?LOG),
    {ok, St3#st{health = maps:with(interesting(Config), St3#st.health)}}.

persist(#st{path = Path, config = Config, acceptor = Acc} = St) ->
    case quorum_store:save(Path, #{config => Config, acceptor => Acc}) of
        ok -> {ok, St};
        {error, _} = E -> E
    end.

%%% Peers

hello(Node, St) ->
    send_state(Node, hello, St).

send_state(Node, Kind, St) ->
    {View, St1} = current_view(St),
    _ = erlang:send({?MODULE, Node}, {quorum_state, node(), self(), St1#st.seq, View, Kind}, [noconnect]),
    St1.

%% Our state as peers see it; a change bumps the sequence number.
current_view(#st{config = Config, advertised = Adv, seq = Seq} = St) ->
    View = #{epoch => epoch(Config), config => Config, pending => own_pending(St)},
    case View =:= Adv of
        true -> {View, St};
        false -> {View, St#st{advertised = View, seq = Seq + 1}}
    end.

new_state_msg(St) ->
    {View, St1} = current_view(St),
    {{node(), self(), St1#st.seq, View}, St1}.

%% Tells every peer when our state changed.
advertise(#st{advertised = Adv} = St) ->
    {View, St1} = current_view(St),
    case View =:= Adv of
        true -> St1;
        false ->
            Msg = {quorum_state, node(), self(), St1#st.seq, View, update},
            _ = [erlang:send({?MODULE, N}, Msg, [noconnect]) || N <- nodes()],
            St1
    end.

own_pending(#st{acceptor = Acc, intent = Intent}) ->
    [V || {_, V} <- [quorum_paxos:accepted(Acc)]] ++ [V || #{value := V} <- [Intent]].

record_peer(Node, Pid, Seq, View, #st{peers = Peers} = St) ->
    case Peers of
        #{Node := #peer{pid = Pid, seq = S}} when Seq =< S ->
            St;
        #{Node := #peer{pid = Pid} = P} ->
            learn_from_peer(Node, View, St#st{peers = Peers#{Node := P#peer{seq = Seq, view = View}}});
        #{Node := #peer{mref = Old}} ->
            erlang:demonitor(Old, [flush]),
            learn_from_peer(Node, View, new_peer(Node, Pid, Seq, View, St));
        #{} ->
            learn_from_peer(Node, View, new_peer(Node, Pid, Seq, View, St))
    end.

new_peer(Node, Pid, Seq, View, #st{peers = Peers} = St) ->
    St#st{peers = Peers#{Node => #peer{pid = Pid, mref = erlang:monitor(process, Pid), seq = Seq, view = View}}}.

%% A peer at a higher epoch hands us its (committed) configuration; a peer behind gets ours.
learn_from_peer(Node, #{config := Config}, #st{config = Mine} = St) ->
    case quorum_rules:compare(Config, Mine) of
        newer -> element(2, adopt(Config, {peer, Node}, St));
        older -> send_state(Node, update, St);
        same -> St;
        conflict ->
            logger:error("peer ~p holds another configuration for epoch ~b: ~p (ours ~p)",
                         [Node, epoch(Mine), Config, Mine], ?LOG),
            St
    end.

forget_peer(Node, #st{peers = Peers} = St) ->
    case Peers of
        #{Node := #peer{mref = MRef}} ->
            erlang:demonitor(MRef, [flush]),
            St#st{peers = maps:remove(Node, Peers)};
        #{} ->
            St
    end.

%%% Evaluation, mode, leadership, failure handling

refresh(St0) ->
    Now = now_ms(),
    St1 = expire_lease(St0, Now),
    Eval = quorum_rules:evaluate(view(St1)),
    Mode = quorum_rules:mode(Eval, St1#st.proposal =/= undefined),
    St2 = note_health(Eval, Now, St1#st{eval = Eval}),
    St3 = note_mode(Mode, Eval, Now, St2),
    ok = note_metrics(Eval, St3),
    St4 = note_pending(Eval, Now, St3),
    ok = leadership(Eval, St4),
    St5 = drive(Eval, Now, St4),
    schedule(Now, advertise(reconnect(Now, St5))).

%% Every reconnect_interval_ms, one attempt (in a process of its own: across a partition it
%% blocks until net_setuptime) to connect to each member and standby node that is not connected.
%% This is what heals the cluster once the network does: Erlang never reconnects by itself, and
%% global only meshes nodes that already reach one of them.
reconnect(Now, #st{next_connect = Next, connecting = Connecting, config = Config} = St) ->
    Interval = opt(reconnect_interval_ms, St),
    Due = Interval > 0 andalso is_alive() andalso (Next =:= undefined orelse Now >= Next),
    case Due of
        true ->
            Busy = maps:values(Connecting),
            Missing = [N || N <- interesting(Config), not lists:member(N, nodes()), not lists:member(N, Busy)],
            Started = maps:from_list([{element(2, spawn_monitor(net_kernel, connect_node, [N])), N} || N <- Missing]),
            St#st{connecting = maps:merge(Connecting, Started), next_connect = Now + Interval};
        false ->
            St
    end.

view(#st{config = Config, peers = Peers, suspected = Suspected} = St) ->
    Live = nodes(),
    Reach = maps:from_list([{N, V} || {N, #peer{view = V}} <- maps:to_list(Peers),
                                      lists:member(N, Live), not is_map_key(N, Suspected)]),
    #{self => node(), config => Config, pending => own_pending(St), peers => Reach}.

expire_lease(#st{lease = #{expires := X}} = St, Now) when X =< Now ->
    clear_lease(St);
expire_lease(St, _Now) ->
    St.

%% Since when each member and standby node has been up (reachable) or down, as seen here.
note_health(#{reachable := Reachable}, Now, #st{config = Config, health = Health} = St) ->
    New = maps:from_list(
        [{N, case {lists:member(N, Reachable), maps:get(N, Health, none)} of
                 {true, {up, _} = H} -> H;
                 {true, _} -> {up, Now};
                 {false, {down, _} = H} -> H;
                 {false, _} -> {down, Now}
             end} || N <- interesting(Config)]),
    St#st{health = New}.

interesting(#{members := M, standby := S}) ->
    lists:usort(maps:keys(M) ++ maps:keys(S)) -- [node()].

note_mode(Mode, _Eval, _Now, #st{mode = Mode} = St) ->
    St;
note_mode(Mode, Eval, Now, #st{mode = Old, mode_since = Since, config = Config} = St) ->
    Detail = #{epoch => epoch(Config), members => members(Config), reachable => maps:get(reachable, Eval),
               quorum_size => maps:get(quorum_size, Eval)},
    case {Old, Mode} of
        {_, minority} ->
            Reason = minority_reason(Eval),
            _ = autonomic_events:publish(minority_entered, Detail#{reason => Reason}),
            logger:warning("minority: no quorum (~p); actions are fenced. reachable ~p, members ~p",
                           [Reason, maps:get(reachable, Eval), members(Config)], ?LOG);
        {minority, _} ->
            _ = autonomic_events:publish(minority_left, Detail#{minority_for_ms => Now - Since}),
            logger:notice("quorum regained after ~b ms: reachable ~p", [Now - Since, maps:get(reachable, Eval)], ?LOG);
        _ ->
            ok
    end,
    ok = autonomic:set_fence(Mode =:= minority andalso opt(fence, St)),
    QuorumSince = case {Old, Mode} of
        {_, minority} -> undefined;
        {Was, _} when Was =:= minority; Was =:= undefined -> Now;
        _ -> St#st.quorum_since
    end,
    [ok = autonomic_metrics:set(autonomic_quorum_mode, #{mode => M}, bool(M =:= Mode))
     || M <- [normal, minority, reconfiguring]],
    ok = autonomic_metrics:set(autonomic_quorum_have_quorum, #{}, bool(Mode =/= minority)),
    St#st{mode = Mode, mode_since = Now, quorum_since = QuorumSince}.

note_metrics(#{reachable := Reachable, quorum_size := Size}, #st{config = Config}) ->
    ok = autonomic_metrics:set(autonomic_quorum_epoch, #{}, epoch(Config)),
    ok = autonomic_metrics:set(autonomic_quorum_members, #{}, maps:size(maps:get(members, Config))),
    ok = autonomic_metrics:set(autonomic_quorum_size, #{}, Size),
    autonomic_metrics:set(autonomic_quorum_reachable, #{}, length(Reachable)).

minority_reason(#{member := false}) -> not_a_member;
minority_reason(#{base_quorum := false}) -> no_majority;
minority_reason(_) -> pending_change_without_majority.

note_pending(#{pending := []}, _Now, St) -> St#st{pending_since = undefined};
note_pending(_, Now, #st{pending_since = undefined} = St) -> St#st{pending_since = Now};
note_pending(_, _Now, St) -> St.

%% The node the rule picks claims the global name when nobody reachable holds it; a holder
%% without quorum gives it up.
leadership(#{have_quorum := HaveQuorum, supporters := Supporters, reachable := Reachable},
           #st{config = #{members := Members} = Config}) ->
    Holder = global:whereis_name(quorum_leader:name()),
    Mine = whereis(quorum_leader),
    case HaveQuorum of
        false when is_pid(Holder), Holder =:= Mine ->
            quorum_leader:release();
        false ->
            ok;
        true ->
            HolderReachable = is_pid(Holder) andalso lists:member(node(Holder), Reachable),
            case not HolderReachable andalso quorum_rules:choose_leader(Members, Supporters) =:= node() of
                true -> quorum_leader:claim(epoch(Config));
                false -> ok
            end
    end.

%% Whether this node runs the failure handler: it holds the leader's name, or the holder is out
%% of its reach (a hung leader keeps its connections, and so the name, until net_ticktime runs
%% out) and the leader rule picks this node. Two nodes may drive for a moment; the vote keeps
%% their changes apart.
drives(#{supporters := Supporters, reachable := Reachable}, #st{config = #{members := Members}}) ->
    Holder = global:whereis_name(quorum_leader:name()),
    Mine = whereis(quorum_leader),
    case is_pid(Holder) andalso lists:member(node(Holder), Reachable) of
        true -> Holder =:= Mine;
        false -> quorum_rules:choose_leader(Members, Supporters) =:= node()
    end.

%% The failure handler and the completion of abandoned changes.
drive(_Eval, _Now, #st{proposal = P} = St) when P =/= undefined ->
    St;
drive(_Eval, Now, #st{retry_at = R} = St) when is_integer(R), Now < R ->
    St;
drive(#{base_quorum := Base, pending := Pending, supporters := Supporters} = Eval, Now,
      #st{config = #{members := Members} = Config, pending_since = Since} = St) ->
    Auto = opt(auto_reconfigure, St),
    if
        Pending =/= [], Base, Now - Since >= map_get(promise_lease_ms, St#st.opts) ->
            case quorum_rules:choose_leader(Members, Supporters) =:= node() of
                true ->
                    logger:notice("completing a change left unfinished for ~b ms", [Now - Since], ?LOG),
                    start_proposal(recover, none, St);
                false ->
                    St
            end;
        Pending =:= [], Auto ->
            case maps:get(have_quorum, Eval) andalso drives(Eval, St) of
                true ->
                    case quorum_rules:plan(Config, grace_health(St), plan_opts(Now, St)) of
                        none -> St;
                        {Reason, Change} -> start_proposal({Reason, Change}, none, St)
                    end;
                false ->
                    St
            end;
        true ->
            St
    end.

%% Nobody could reconfigure while this node had no quorum: members still missing when it regains
%% quorum get a full grace period from then.
grace_health(#st{health = Health, quorum_since = Since}) ->
    maps:map(fun(_, {down, T}) when is_integer(Since) -> {down, max(T, Since)};
                (_, H) -> H
             end, Health).

plan_opts(Now, St) ->
    #{self => node(), now => Now, grace_ms => opt(grace_period_ms, St), rejoin_after_ms => opt(rejoin_after_ms, St),
      batch_ms => opt(check_interval_ms, St)}.

start_proposal(What, From, #st{config = Config, acceptor = Acc, max_round = Max} = St) ->
    Id = {node(), erlang:system_time(microsecond), erlang:unique_integer([positive])},
    {Kind, Value} = case What of
        recover -> {recover, recover};
        {Reason, Change} -> {Reason, quorum_rules:apply_change(Config, Change, #{reason => Reason, id => Id})}
    end,
    Req = #{config => Config, value => Value, id => Id, kind => Kind, from => From, manager => self(),
            ballot => quorum_paxos:next_ballot(Acc, Max, {node(), Id}),
            vote_timeout => opt(vote_timeout_ms, St)},
    {Pid, MRef} = spawn_monitor(quorum_proposer, run, [Req]),
    St#st{proposal = #{pid => Pid, mref => MRef, kind => Kind, from => From}}.

proposal_finished(Outcome, #{max_round := Round} = Detail, #st{max_round = Max} = St) ->
    Retry = case Outcome of
        committed -> undefined;
        _ -> now_ms() + opt(check_interval_ms, St)
    end,
    Last = case Outcome of
        committed -> Detail#{at => os:system_time(millisecond)};
        _ -> St#st.last_commit
    end,
    St#st{proposal = undefined, retry_at = Retry, max_round = max(Max, Round), last_commit = Last}.

%% Wakes at the next deadline (a grace period, a rejoin delay, a lease, the pending timeout), and
%% at least every check_interval_ms.
schedule(Now, #st{config = Config, timer = Timer, next_connect = NextConnect} = St) ->
    Deadlines = [Now + opt(check_interval_ms, St),
                 quorum_rules:next_deadline(Config, grace_health(St), plan_opts(Now, St)) | [NextConnect || is_integer(NextConnect)]],
    At = lists:min(Deadlines),
    case Timer of
        {_, Current} when Current =< At -> St;
        {Ref, _} ->
            _ = erlang:cancel_timer(Ref),
            St#st{timer = {erlang:send_after(max(0, At - Now), self(), tick), At}};
        undefined ->
            St#st{timer = {erlang:send_after(max(0, At - Now), self(), tick), At}}
    end.

%%% Reports

status(#st{config = Config, eval = Eval, mode = Mode}) ->
    #{have_quorum := HaveQuorum, reachable := Reachable, quorum_size := Size} = Eval,
    #{epoch => epoch(Config), members => members(Config), reachable => Reachable, quorum_size => Size,
      have_quorum => HaveQuorum, leader => leader_node(Eval), mode => Mode}.

leader_node(#{have_quorum := true, reachable := Reachable}) ->
    case global:whereis_name(quorum_leader:name()) of
        Pid when is_pid(Pid) ->
            case lists:member(node(Pid), Reachable) of
                true -> node(Pid);
                false -> undefined
            end;
        undefined ->
            undefined
    end;
leader_node(_) ->
    undefined.

info(#st{} = St) ->
    #st{config = Config, acceptor = Acc, eval = Eval, peers = Peers, proposal = P, lease = Lease} = St,
    #{status => status(St),
      config => Config,
      weights => maps:get(members, Config),
      standby => maps:get(standby, Config),
      learned_at => St#st.learned_at,
      mode_since_ms => now_ms() - St#st.mode_since,
      supporters => maps:get(supporters, Eval),
      pending => [maps:with([epoch, members, change], V) || V <- maps:get(pending, Eval)],
      acceptor => #{slot => quorum_paxos:slot(Acc), promised => quorum_paxos:promised(Acc),
                    accepted => case quorum_paxos:accepted(Acc) of none -> none; {B, V} -> {B, maps:get(change, V, none)} end},
      lease => case Lease of undefined -> none; #{ballot := B} -> B end,
      peers => maps:map(fun(_, #peer{view = #{epoch := E, pending := Pd}}) -> #{epoch => E, pending => length(Pd)} end, Peers),
      suspected => maps:keys(St#st.suspected),
      %% Since when each member and standby node has been up or down here, in OS time (ms).
      health => maps:map(fun(_, {H, T}) -> {H, os_time(T)} end, St#st.health),
      proposal => case P of undefined -> none; #{kind := K} -> K end,
      last_commit => St#st.last_commit}.

%%% Helpers

epoch(#{epoch := E}) -> E.

members(#{members := M}) -> lists:sort(maps:keys(M)).

opt(Key, #st{opts = Opts}) -> maps:get(Key, Opts).

bool(true) -> 1;
bool(false) -> 0.

now_ms() ->
    erlang:monotonic_time(millisecond).

%% A monotonic instant as OS system time: comparable across nodes on one host (Erlang system time
%% of two VMs may differ by the time corrections each applied since it started).
os_time(Monotonic) ->
    os:system_time(millisecond) - (now_ms() - Monotonic).
