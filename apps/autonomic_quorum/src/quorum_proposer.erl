%%% @doc One membership change, proposed: a Paxos round for epoch `E + 1' run in its own process
%%% (spawned and monitored by {@link quorum_manager}) so the manager keeps answering meanwhile.
%%%
%%% <ol>
%%%   <li>Prepare: every member of epoch `E' connected to this node is asked at once
%%%       (`erpc:multicall' with the vote timeout) to promise the proposal's ballot; the members
%%%       not connected do not vote (asking them would set up a connection, which across a
%%%       partition blocks until the timeout). Without a weighted majority of promises the
%%%       proposer releases the promises it got and answers `change_in_progress' (some member
%%%       was busy with, or had promised, another proposal) or `no_quorum'.</li>
%%%   <li>Accept: with a majority, it proposes the value accepted at the highest ballot among the
%%%       promises if there is one (an earlier change left unfinished: it is completed, and the
%%%       caller gets `change_in_progress'), else its own. A weighted majority of accepts commits
%%%       it.</li>
%%%   <li>Learn: the committed configuration is sent to every reachable node, which saves it and
%%%       moves to the new epoch; `membership_changed' is published.</li>
%%% </ol>
%%% A member that answers `stale' holds a later epoch: the proposer's node adopts it and the
%%% answer is `change_in_progress'. Result metric: `autonomic_quorum_reconfigurations_total'.
-module(quorum_proposer).

-export([run/1]).

-define(LOG, #{domain => [autonomic, quorum]}).

-type request() :: #{config := quorum_rules:config(), value := quorum_rules:config() | recover,
                     id := term(), kind := atom(), from := gen_server:from() | none, manager := pid(),
                     ballot := quorum_paxos:ballot(), vote_timeout := pos_integer()}.

%% @doc Runs the proposal described by the request to its end, answers the caller (if any) and
%% reports to the manager with `{proposal_done, self(), Outcome, Detail}'.
-spec run(request()) -> ok.
run(#{config := Config, id := Id, kind := Kind, from := From, manager := Manager} = Req) ->
    Start = now_ms(),
    {Outcome, Reply, Detail} = propose(Req),
    Duration = now_ms() - Start,
    ok = autonomic_metrics:inc(autonomic_quorum_reconfigurations_total, #{result => Outcome, kind => Kind}),
    case Outcome of
        committed -> ok = autonomic_metrics:observe(autonomic_quorum_reconfiguration_seconds, #{}, Duration / 1000);
        _ -> ok
    end,
    logger:info("proposal ~p (~p) from epoch ~b: ~p in ~b ms", [Id, Kind, maps:get(epoch, Config), Outcome, Duration], ?LOG),
    _ = From =/= none andalso gen_server:reply(From, Reply),
    Manager ! {proposal_done, self(), Outcome, Detail#{kind => Kind, duration_ms => Duration}},
    ok.

propose(#{config := #{epoch := E, members := Weights} = Config, value := Own, ballot := Ballot,
          vote_timeout := T} = Req) ->
    Slot = E + 1,
    Members = lists:sort(maps:keys(Weights)),
    CallTimeout = max(50, T - 100),
    Promises = ask(Members, {prepare, Slot, Ballot, Config, self(), CallTimeout}, T,
                   decided(Weights, fun({promise, _}) -> true; (_) -> false end)),
    Seen = #{max_round => max_round(Promises)},
    case newest_stale(Promises, E) of
        {stale, Newer} ->
            _ = quorum_manager:learn(Newer),
            {conflict, {error, change_in_progress}, Seen};
        none ->
            case quorum_paxos:tally_promises(Weights, Promises) of
                no_quorum ->
                    ok = abandon(Members, Slot, Ballot),
                    refused(Promises, Seen);
                {quorum, none} when Own =:= recover ->
                    ok = abandon(Members, Slot, Ballot),
                    {nothing_to_recover, {error, nothing_to_recover}, Seen};
                {quorum, Prior} ->
                    Value = case Prior of
                        none -> Own;
                        {_, Earlier} -> Earlier
                    end,
                    accept_phase(Req, Members, Slot, Value, CallTimeout, Seen)
            end
    end.

accept_phase(#{config := #{epoch := E, members := Weights} = Config, ballot := Ballot, id := Id,
               vote_timeout := T}, Members, Slot, Value, CallTimeout, Seen) ->
    Accepts = ask(Members, {accept, Slot, Ballot, Value, Config, CallTimeout}, T,
                  decided(Weights, fun(R) -> R =:= {accepted, Ballot} end)),
    case newest_stale(Accepts, E) of
        {stale, Newer} ->
            _ = quorum_manager:learn(Newer),
            {conflict, {error, change_in_progress}, Seen};
        none ->
            case quorum_paxos:tally_accepts(Weights, Ballot, Accepts) of
                true ->
                    ok = commit(Value, T),
                    Change = maps:get(change, Value),
                    Detail = Seen#{epoch => Slot, change => Change},
                    case maps:get(id, Change) =:= Id of
                        true -> {committed, {ok, Slot}, Detail};
                        false -> {completed, {error, change_in_progress}, Detail}
                    end;
                false ->
                    ok = abandon(Members, Slot, Ballot),
                    case [N || {N, {accepted, B}} <- Accepts, B =:= Ballot] of
                        [] ->
                            refused(Accepts, Seen);
                        Some ->
                            {outcome_unknown,
                             {error, {outcome_unknown, #{accepted_by => Some, answers => Accepts}}}, Seen}
                    end
            end
    end.

%% Without a majority: `change_in_progress' if another proposal stood in the way, else no quorum.
refused(Replies, Seen) ->
    Contended = lists:any(fun({_, {busy, _}}) -> true; ({_, {reject, _}}) -> true; (_) -> false end, Replies),
    case Contended of
        true -> {conflict, {error, change_in_progress}, Seen};
        false -> {no_quorum, {error, no_quorum}, Seen#{answers => Replies}}
    end.

%% Sends the committed configuration to every reachable node (this one first in the list) and
%% announces it.
commit(#{epoch := Epoch, members := M, change := #{add := Add, remove := Remove, reason := Reason, id := {Origin, _, _}}} = Value, T) ->
    Nodes = [node() | nodes()],
    _ = erpc:multicall(Nodes, quorum_manager, learn, [Value], T),
    _ = autonomic_events:publish(membership_changed, #{
        epoch => Epoch, members => lists:sort(maps:keys(M)), weights => M,
        added => Add, removed => Remove, reason => Reason,
        proposer => node(), proposed_by => Origin}),
    logger:notice("epoch ~b committed: members ~p (added ~p, removed ~p, ~p)",
                  [Epoch, lists:sort(maps:keys(M)), Add, Remove, Reason], ?LOG),
    ok.

abandon(Members, Slot, Ballot) ->
    lists:foreach(fun(N) -> ok = erpc:cast(N, quorum_manager, vote, [{abandon, Slot, Ballot}]) end, connected(Members)).

%% Asks the members at once and waits only until the answers decide the phase (`Decided' says
%% when) or the timeout: a member that is hung but still connected costs nothing while the
%% others answer. Only members connected now are asked: a call to another would make the
%% distribution try to connect to it, which across a real partition blocks until the timeout
%% (and would reconnect what a split keeps apart). The others do not vote.
ask(Nodes, Req, Timeout, Decided) ->
    Asked = connected(Nodes),
    Self = self(),
    Tag = make_ref(),
    _ = [spawn(fun() -> Self ! {Tag, N, call(N, Req, Timeout)} end) || N <- Asked],
    Replies = collect(Tag, Asked, [], Decided, erlang:monotonic_time(millisecond) + Timeout),
    [{N, proplists:get_value(N, Replies, {error, case lists:member(N, Asked) of
                                                    true -> timeout;
                                                    false -> noconnection
                                                end})} || N <- Nodes].

collect(_Tag, [], Replies, _Decided, _Deadline) ->
    Replies;
collect(Tag, Waiting, Replies, Decided, Deadline) ->
    case Decided(Replies, Waiting) of
        true ->
            Replies;
        false ->
            receive
                {Tag, N, Reply} -> collect(Tag, lists:delete(N, Waiting), [{N, Reply} | Replies], Decided, Deadline)
            after max(0, Deadline - erlang:monotonic_time(millisecond)) ->
                Replies
            end
    end.

call(Node, Req, Timeout) ->
    try erpc:call(Node, quorum_manager, vote, [Req], Timeout)
    catch
        error:{erpc, Reason} -> {error, Reason};
        Class:Reason -> {error, {Class, Reason}}
    end.

%% A phase is decided once a weighted majority gave the answer it needs, once that can no longer
%% happen, or once a member answered from a later epoch.
decided(Weights, Good) ->
    fun(Replies, Waiting) ->
        Yes = [N || {N, R} <- Replies, Good(R)],
        lists:any(fun({_, {stale, _}}) -> true; (_) -> false end, Replies)
            orelse quorum_rules:is_majority(Weights, Yes)
            orelse not quorum_rules:is_majority(Weights, Yes ++ Waiting)
    end.

connected(Nodes) ->
    Up = [node() | nodes()],
    [N || N <- Nodes, lists:member(N, Up)].

%% The latest configuration a member answered `stale' with, if any is later than ours.
newest_stale(Replies, E) ->
    case lists:sort([{CE, C} || {_, {stale, #{epoch := CE} = C}} <- Replies, CE > E]) of
        [] -> none;
        Stale -> {stale, element(2, lists:last(Stale))}
    end.

max_round(Replies) ->
    lists:max([0 | [quorum_paxos:ballot_round(B) || {_, {Tag, B}} <- Replies,
                                                   Tag =:= reject orelse Tag =:= busy, is_tuple(B)]]).

now_ms() ->
    erlang:monotonic_time(millisecond).
