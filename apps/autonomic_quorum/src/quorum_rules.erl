%%% @doc The quorum manager's decisions as pure functions: weighted majorities, which membership
%%% changes are valid and safe, whether a node may claim quorum, who leads, and what the
%%% failure handler should propose. No processes, no clocks, no I/O: {@link quorum_manager} feeds
%%% in what it knows and acts on the answer, and the EUnit and PropEr tests call these directly.
%%%
%%% <h3>Configurations</h3>
%%% A configuration is the committed membership at an epoch: `members' (node to weight, weights are
%%% positive integers, default 1) and `standby' (members the failure handler removed, with their
%%% weights, so they can be restored when they come back). Epoch `E + 1' is decided by the members
%%% of epoch `E' (see {@link quorum_paxos}); two nodes at the same epoch therefore hold the same
%%% configuration.
%%%
%%% <h3>The quorum rule, and why two disjoint groups can never both claim it</h3>
%%% A node at epoch `E' counts as supporters itself and the peers it currently reaches (connected,
%%% not suspected by the monitor, state heard since they connected) whose epoch is `E', or `E - 1'
%%% (such a peer is learning `E' right now: a node sends its configuration to any peer it sees
%%% behind). Let `Pending' be every value that it or one of its supporters at `E' has accepted,
%%% or is about to accept, for epoch `E + 1'. It has quorum when it is a member of `E' and the
%%% supporters hold a weighted majority of `E''s members and of the members of every value in
%%% `Pending' ({@link evaluate/1}).
%%%
%%% Why this is safe across reconfigurations. An acceptor tells every peer it reaches, and waits
%%% until each has taken note, before it accepts a value; so what a node holds about a connected
%%% peer is never older than that peer's last accept. Now let `n' at `E' and `m' at `F >= E'
%%% both claim quorum. If `F = E', both hold a majority of `E''s members: they share a node.
%%% If `F > E', epoch `E + 1' was decided: a weighted majority `A' of `E' accepted its value `V'.
%%% `n''s supporters hold a majority of `E', so one of them, `x', is in `A'. `n' knows `x' at `E'
%%% or `E - 1' (it counts no other), and not at `E - 1', which would be older than `x''s accept at
%%% `E'; so it knows `x' at `E' with `V' pending, and needs a majority of `V''s members as well.
%%% If `F = E + 1', `m' holds a majority of `V''s members too: they share a node. If `F > E + 1',
%%% epoch `E + 2' was decided by a majority of `V''s members, one of which, `y', supports `n';
%%% `n' knows `y' at `E' or `E - 1', older than `y''s accept at `E + 1': impossible. Two nodes
%%% that claim quorum therefore always reach a common node; two groups that cannot see each other
%%% never both have quorum. The argument needs the acceptor's state to survive restarts
%%% ({@link quorum_store}); its one timing assumption is in how the manager treats peers the
%%% monitor suspects (not waited for: see {@link quorum_manager}), which matters only to a node
%%% that was itself paused past the suspicion threshold.
-module(quorum_rules).

-export([total_weight/1, quorum_size/1, weight_of/2, is_majority/2]).
-export([parse_members/1, validate_change/4, apply_change/3, safe_removal/2, removable/2]).
-export([evaluate/1, mode/2, choose_leader/2, compare/2, plan/3, next_deadline/3]).

-export_type([weights/0, config/0, change/0, view/0, evaluation/0, mode/0, health/0]).

-type weights() :: #{node() => pos_integer()}.
%% Members (or standby nodes) and their voting weights.

-type change() :: #{add := [node()], remove := [node()], reason := manual | node_loss | rejoin,
                    id := term()}.
%% What a configuration changed from its predecessor, and the proposal that made it.

-type config() :: #{epoch := non_neg_integer(), members := weights(), standby := weights(),
                    change => change()}.

-type peer_view() :: #{epoch := non_neg_integer(), config := config(), pending := [config()]}.

-type view() :: #{self := node(), config := config(), pending := [config()],
                  peers := #{node() => peer_view()}}.
%% What a node knows: its committed configuration, the values it has accepted or is accepting for
%% the next epoch, and the peers it currently reaches.

-type evaluation() :: #{have_quorum := boolean(), base_quorum := boolean(), member := boolean(),
                        reachable := [node()], supporters := [node()], quorum_size := pos_integer(),
                        pending := [config()]}.

-type mode() :: normal | minority | reconfiguring.

-type health() :: #{node() => {up | down, Since :: integer()}}.

%%% Weights and majorities

%% @doc The sum of the weights.
-spec total_weight(weights()) -> non_neg_integer().
total_weight(Weights) ->
    lists:sum(maps:values(Weights)).

%% @doc The weight a set of members needs to be a majority: more than half of the total.
-spec quorum_size(weights()) -> pos_integer().
quorum_size(Weights) ->
    total_weight(Weights) div 2 + 1.

%% @doc The weight the given nodes hold among `Weights' (non-members weigh nothing).
-spec weight_of(weights(), [node()]) -> non_neg_integer().
weight_of(Weights, Nodes) ->
    lists:sum([W || N <- lists:usort(Nodes), {ok, W} <- [maps:find(N, Weights)]]).

%% @doc Whether `Nodes' hold strictly more than half of the total weight.
-spec is_majority(weights(), [node()]) -> boolean().
is_majority(Weights, Nodes) ->
    Total = total_weight(Weights),
    Total > 0 andalso 2 * weight_of(Weights, Nodes) > Total.

%%% Membership changes

%% @doc Parses a configured member list: `Node' (weight 1) or `{Node, Weight}', at least one,
%% no duplicates, weights positive integers.
-spec parse_members(term()) -> {ok, weights()} | {error, term()}.
parse_members(List) when is_list(List), List =/= [] ->
    case parse_entries(List, #{}) of
        {ok, Weights} -> {ok, Weights};
        {error, _} = E -> E
    end;
parse_members([]) ->
    {error, no_members};
parse_members(Other) ->
    {error, {not_a_list, Other}}.

parse_entries([], Acc) ->
    {ok, Acc};
parse_entries([Entry | Rest], Acc) ->
    case parse_entry(Entry) of
        {ok, N, _} when is_map_key(N, Acc) -> {error, {duplicate_node, N}};
        {ok, N, W} -> parse_entries(Rest, Acc#{N => W});
        {error, _} = E -> E
    end.

parse_entry({N, W}) ->
    case is_node_name(N) of
        false -> {error, {invalid_node, N}};
        true when is_integer(W), W > 0 -> {ok, N, W};
        true -> {error, {invalid_weight, N, W}}
    end;
parse_entry(N) ->
    case is_node_name(N) of
        true -> {ok, N, 1};
        false -> {error, {invalid_node, N}}
    end.

is_node_name(N) when is_atom(N) ->
    length(string:split(atom_to_list(N), "@")) =:= 2;
is_node_name(_) ->
    false.

%% @doc Checks a proposed change against the configuration in force. `Add' holds `Node' or
%% `{Node, Weight}' (new members; each must be reachable: in `Connected'); `Remove' holds members,
%% or standby nodes (which are then forgotten). Returns the weights to add and the nodes to
%% remove, or the first problem found:
%% `{not_a_list, Term}', `{invalid_node, Term}', `{invalid_weight, Node, Weight}',
%% `empty_change', `{duplicate_node, Node}', `{add_and_remove, Node}', `{already_member, Node}',
%% `{unknown_node, Node}' (an unreachable node to add, or a node to remove that is neither a
%% member nor on standby), `no_members_left', or `{unsafe_removal, Detail}' (the members left
%% would not be a weighted majority of the members in force).
-spec validate_change(config(), term(), term(), [node()]) ->
    {ok, {weights(), [node()]}} | {error, term()}.
validate_change(#{members := Members, standby := Standby}, Add, Remove, Connected) ->
    Checks = [
        fun() -> is_list(Add) orelse {error, {not_a_list, Add}} end,
        fun() -> is_list(Remove) orelse {error, {not_a_list, Remove}} end,
        fun() -> Add =/= [] orelse Remove =/= [] orelse {error, empty_change} end,
        fun() -> each(Add, fun(E) -> ok_or_error(parse_entry(E)) end) end,
        fun() -> each(Remove, fun(N) -> is_node_name(N) orelse {error, {invalid_node, N}} end) end,
        fun() -> no_duplicates([node_of(E) || E <- Add] ++ Remove) end,
        fun() -> each(Add, fun(E) -> not lists:member(node_of(E), Remove) orelse {error, {add_and_remove, node_of(E)}} end) end,
        fun() -> each(Add, fun(E) -> not is_map_key(node_of(E), Members) orelse {error, {already_member, node_of(E)}} end) end,
        fun() -> each(Add, fun(E) -> lists:member(node_of(E), Connected) orelse {error, {unknown_node, node_of(E)}} end) end,
        fun() ->
            each(Remove, fun(N) -> is_map_key(N, Members) orelse is_map_key(N, Standby) orelse {error, {unknown_node, N}} end)
        end,
        fun() -> maps:size(maps:without(Remove, Members)) > 0 orelse {error, no_members_left} end,
        fun() ->
            safe_removal(Members, Remove) orelse
                {error, {unsafe_removal, #{remaining_weight => total_weight(maps:without(Remove, Members)),
                                           total_weight => total_weight(Members)}}}
        end
    ],
    case first_error(Checks) of
        ok ->
            AddWeights = maps:from_list([{N, W} || E <- Add, {ok, N, W} <- [parse_entry(E)]]),
            {ok, {AddWeights, lists:usort(Remove)}};
        {error, _} = Error ->
            Error
    end.

%% Runs the checks in order; each answers true or {error, Reason}.
first_error([]) ->
    ok;
first_error([Check | Rest]) ->
    case Check() of
        true -> first_error(Rest);
        {error, _} = E -> E
    end.

each([], _Fun) ->
    true;
each([X | Rest], Fun) ->
    case Fun(X) of
        true -> each(Rest, Fun);
        {error, _} = E -> E
    end.

ok_or_error({ok, _, _}) -> true;
ok_or_error({error, _} = E) -> E.

no_duplicates(Nodes) ->
    case Nodes -- lists:usort(Nodes) of
        [] -> true;
        [N | _] -> {error, {duplicate_node, N}}
    end.

node_of({N, _}) -> N;
node_of(N) -> N.

%% @doc The configuration that follows `Config' after adding `AddWeights' and removing `Remove'.
%% Members removed for `node_loss' go on standby (with their weights) so they can be restored;
%% members removed by hand do not, and standby nodes named in `Remove' are forgotten. Added nodes
%% leave standby. The epoch is `Config''s plus one.
-spec apply_change(config(), {weights(), [node()]}, #{reason := node_loss | rejoin | manual, id := term()}) -> config().
apply_change(#{epoch := E, members := Members, standby := Standby}, {AddWeights, Remove}, #{reason := Reason, id := Id}) ->
    Removed = maps:with(Remove, Members),
    Standby1 = maps:without(maps:keys(AddWeights) ++ Remove, Standby),
    Standby2 = case Reason of
        node_loss -> maps:merge(Standby1, Removed);
        _ -> Standby1
    end,
    #{epoch => E + 1,
      members => maps:merge(maps:without(Remove, Members), AddWeights),
      standby => Standby2,
      change => #{add => lists:sort(maps:keys(AddWeights)), remove => lists:sort(Remove),
                  reason => Reason, id => Id}}.

%% @doc Whether removing `Remove' leaves members that could have formed a weighted majority of
%% `Members' on their own (and leaves any member at all).
-spec safe_removal(weights(), [node()]) -> boolean().
safe_removal(Members, Remove) ->
    Left = maps:without(Remove, Members),
    maps:size(Left) > 0 andalso is_majority(Members, maps:keys(Left)).

%% @doc The part of `Candidates' that can be removed safely, chosen greedily in the order given:
%% a candidate is kept when removing it together with those kept before it is still safe.
-spec removable(weights(), [node()]) -> [node()].
removable(Members, Candidates) ->
    lists:reverse(lists:foldl(
        fun(N, Acc) ->
            case is_map_key(N, Members) andalso not lists:member(N, Acc) andalso safe_removal(Members, [N | Acc]) of
                true -> [N | Acc];
                false -> Acc
            end
        end, [], Candidates)).

%%% Quorum

%% @doc Whether the node described by `View' has quorum (see the module doc), with what it
%% reaches, who supports it and the values pending. `base_quorum' is the majority of the
%% committed members alone (enough to finish a pending change, not to act).
-spec evaluate(view()) -> evaluation().
evaluate(#{self := Self, config := #{epoch := E, members := M} = C, pending := Own, peers := Peers}) ->
    Same = [N || {N, #{epoch := PE, config := PC}} <- maps:to_list(Peers), PE =:= E, same_config(PC, C)],
    %% A peer one epoch behind is learning ours right now (we send it as soon as we see it).
    Behind = [N || {N, #{epoch := PE}} <- maps:to_list(Peers), PE =:= E - 1],
    Supporters = lists:usort([Self | Same ++ Behind]),
    PeerPending = lists:append([maps:get(pending, maps:get(N, Peers)) || N <- Same]),
    Pending = lists:usort([V || #{epoch := VE} = V <- Own ++ PeerPending, VE =:= E + 1]),
    Member = is_map_key(Self, M),
    Base = Member andalso is_majority(M, Supporters),
    Joint = lists:all(fun(#{members := VM}) -> is_majority(VM, Supporters) end, Pending),
    #{have_quorum => Base andalso Joint,
      base_quorum => Base,
      member => Member,
      reachable => lists:usort([Self | maps:keys(Peers)]),
      supporters => Supporters,
      quorum_size => quorum_size(M),
      pending => Pending}.

%% @doc The mode that follows from an evaluation: `minority' without quorum (the node must not
%% act), `reconfiguring' with quorum while a change is pending or being proposed here, else
%% `normal'.
-spec mode(evaluation(), boolean()) -> mode().
mode(#{have_quorum := false}, _Proposing) -> minority;
mode(#{pending := [_ | _]}, _Proposing) -> reconfiguring;
mode(_, true) -> reconfiguring;
mode(_, false) -> normal.

%% @doc The leader among the supporters: the member with the highest weight, then the smallest
%% name. `undefined' when no supporter is a member.
-spec choose_leader(weights(), [node()]) -> node() | undefined.
choose_leader(Members, Supporters) ->
    case lists:sort([{-W, N} || N <- Supporters, {ok, W} <- [maps:find(N, Members)]]) of
        [{_, Leader} | _] -> Leader;
        [] -> undefined
    end.

%% @doc How configuration `A' relates to `B': a later epoch (`newer'), an earlier one (`older'),
%% the same (`same'), or the same epoch with other members (`conflict', which the protocol rules
%% out; it can only come from nodes started with different member lists).
-spec compare(config(), config()) -> newer | older | same | conflict.
compare(#{epoch := EA}, #{epoch := EB}) when EA > EB -> newer;
compare(#{epoch := EA}, #{epoch := EB}) when EA < EB -> older;
compare(A, B) ->
    case same_config(A, B) of
        true -> same;
        false -> conflict
    end.

same_config(A, B) ->
    maps:with([epoch, members, standby], A) =:= maps:with([epoch, members, standby], B).

%%% The failure handler

%% @doc What the failure handler should propose, given how long each other node has been up or
%% down (`Health', as seen here): remove the members down for at least `grace_ms' (as many as
%% is safe, longest down first; they go on standby), and restore the standby nodes up for at
%% least `rejoin_after_ms'. Nodes whose delay ends within `batch_ms' of the first one's are taken
%% in the same change, so nodes lost (or back) together cost one epoch. `none' when there is
%% nothing to do.
-spec plan(config(), health(), #{self := node(), now := integer(), grace_ms := non_neg_integer(),
                                 rejoin_after_ms := non_neg_integer(), batch_ms := non_neg_integer()}) ->
    none | {node_loss | rejoin, {weights(), [node()]}}.
plan(#{members := M, standby := S}, Health, #{self := Self, now := Now, grace_ms := G, rejoin_after_ms := R,
                                             batch_ms := Batch}) ->
    Down = lists:sort([{T, N} || {N, {down, T}} <- maps:to_list(Health), is_map_key(N, M), N =/= Self]),
    Up = lists:sort([{T, N} || {N, {up, T}} <- maps:to_list(Health), is_map_key(N, S)]),
    Lost = due(Down, Now, G, Batch),
    Back = lists:sort(due(Up, Now, R, Batch)),
    case {maps:with(Back, S), removable(M, Lost)} of
        {Add, []} when map_size(Add) =:= 0 -> none;
        {Add, []} -> {rejoin, {Add, []}};
        {Add, Remove} -> {node_loss, {Add, Remove}}
    end.

%% Once the earliest delay has run out, every node whose delay ends within the batch window.
due(Since, Now, Delay, Batch) ->
    case [N || {T, N} <- Since, Now - T >= Delay] of
        [] -> [];
        _ -> [N || {T, N} <- Since, Now - T >= Delay - Batch]
    end.

%% @doc When, after `now', {@link plan/3} may next change its answer (a grace period or a rejoin
%% delay running out), or `infinity'.
-spec next_deadline(config(), health(), #{now := integer(), grace_ms := non_neg_integer(),
                                          rejoin_after_ms := non_neg_integer(), atom() => term()}) ->
    integer() | infinity.
next_deadline(#{members := M, standby := S}, Health, #{now := Now, grace_ms := G, rejoin_after_ms := R}) ->
    Times = [T + G || {N, {down, T}} <- maps:to_list(Health), is_map_key(N, M)] ++
            [T + R || {N, {up, T}} <- maps:to_list(Health), is_map_key(N, S)],
    lists:min([infinity | [T || T <- Times, T > Now]]).
