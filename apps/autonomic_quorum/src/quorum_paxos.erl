%%% @doc Single-decree Paxos for one epoch, as pure functions: the acceptor's state and its answers
%%% to `prepare' and `accept', and the proposer's tallies. {@link quorum_manager} runs the acceptor
%%% (persisting it before every answer), {@link quorum_proposer} the proposer; the PropEr tests
%%% drive both through random interleavings, lost messages and competing proposers.
%%%
%%% Epoch `E + 1' is one Paxos instance (a slot) whose acceptors are the members of epoch `E',
%%% each voting with its weight. The value is the whole next configuration. Safety is the
%%% textbook argument: an acceptor promises a ballot only if it is at least as high as any it
%%% promised before, accepts only at a ballot at least its promise, and a proposer that gathered a
%%% weighted majority of promises must propose the value accepted at the highest ballot among them
%%% (its own only if none was). Any two weighted majorities of one member set intersect, so once
%%% a majority accepted a value at some ballot, every higher ballot carries that value: at most
%%% one value is ever chosen for a slot, even with several proposers at once.
%%%
%%% Ballots are `{Round, Node, Id}' with `Id' unique to the proposal, so no two proposals ever share
%%% a ballot, even across restarts of the proposing node.
-module(quorum_paxos).

-export([new/1, slot/1, promised/1, accepted/1]).
-export([prepare/2, check_accept/2, accept/3]).
-export([next_ballot/3, ballot_round/1, tally_promises/2, tally_accepts/3]).

-export_type([ballot/0, acceptor/0, promise_reply/0]).

-type ballot() :: {Round :: pos_integer(), node(), Id :: term()}.
-type value() :: quorum_rules:config().
-type acceptor() :: #{slot := pos_integer(), promised := ballot() | none, accepted := {ballot(), value()} | none}.
-type promise_reply() :: {promise, {ballot(), value()} | none} | term().

%% @doc A fresh acceptor for `Slot' (the epoch it decides).
-spec new(pos_integer()) -> acceptor().
new(Slot) ->
    #{slot => Slot, promised => none, accepted => none}.

%% @doc The epoch this acceptor votes on.
-spec slot(acceptor()) -> pos_integer().
slot(#{slot := S}) -> S.

%% @doc The highest ballot promised, or `none'.
-spec promised(acceptor()) -> ballot() | none.
promised(#{promised := P}) -> P.

%% @doc The value accepted and its ballot, or `none'.
-spec accepted(acceptor()) -> {ballot(), value()} | none.
accepted(#{accepted := A}) -> A.

%% @doc Phase 1: promise `Ballot' (never to accept a lower one) and report what was accepted, or
%% reject it, naming the higher promise. A repeated prepare of the promised ballot is promised
%% again.
-spec prepare(acceptor(), ballot()) -> {promise, {ballot(), value()} | none, acceptor()} | {reject, ballot()}.
prepare(#{promised := P, accepted := A} = Acc, Ballot) ->
    case at_least(Ballot, P) of
        true -> {promise, A, Acc#{promised := Ballot}};
        false -> {reject, P}
    end.

%% @doc Phase 2, the check alone: may `Ballot' be accepted now?
-spec check_accept(acceptor(), ballot()) -> ok | {reject, ballot()}.
check_accept(#{promised := P}, Ballot) ->
    case at_least(Ballot, P) of
        true -> ok;
        false -> {reject, P}
    end.

%% @doc Phase 2: accept `Value' at `Ballot' (after {@link check_accept/2} said `ok').
-spec accept(acceptor(), ballot(), value()) -> acceptor().
accept(Acc, Ballot, Value) ->
    ok = check_accept(Acc, Ballot),
    Acc#{promised := Ballot, accepted := {Ballot, Value}}.

at_least(_Ballot, none) -> true;
at_least(Ballot, Promised) -> Ballot >= Promised.

%% @doc A ballot above every round this acceptor has seen and above `MaxSeen', for proposal `Id'
%% made by `Node'.
-spec next_ballot(acceptor(), non_neg_integer(), {node(), term()}) -> ballot().
next_ballot(#{promised := P, accepted := A}, MaxSeen, {Node, Id}) ->
    Seen = lists:max([MaxSeen, ballot_round(P) | [ballot_round(B) || {B, _} <- [A], A =/= none]]),
    {Seen + 1, Node, Id}.

%% @doc The round of a ballot (0 for `none').
-spec ballot_round(ballot() | none) -> non_neg_integer().
ballot_round(none) -> 0;
ballot_round({R, _, _}) -> R.

%% @doc Counts the promises (replies `{Node, {promise, Accepted}}'; anything else is not a
%% promise). With a weighted majority of `Members': `{quorum, Highest}', the value accepted at the
%% highest ballot among them (or `none', leaving the proposer free to propose its own).
-spec tally_promises(quorum_rules:weights(), [{node(), promise_reply()}]) ->
    {quorum, {ballot(), value()} | none} | no_quorum.
tally_promises(Members, Replies) ->
    Promises = [{N, A} || {N, {promise, A}} <- Replies, is_map_key(N, Members)],
    case quorum_rules:is_majority(Members, [N || {N, _} <- Promises]) of
        true ->
            Accepted = [A || {_, A} <- Promises, A =/= none],
            {quorum, case Accepted of
                         [] -> none;
                         _ -> lists:max(Accepted)
                     end};
        false ->
            no_quorum
    end.

%% @doc Whether a weighted majority of `Members' accepted `Ballot' (replies
%% `{Node, {accepted, Ballot}}').
-spec tally_accepts(quorum_rules:weights(), ballot(), [{node(), term()}]) -> boolean().
tally_accepts(Members, Ballot, Replies) ->
    quorum_rules:is_majority(Members, [N || {N, {accepted, B}} <- Replies, B =:= Ballot]).
