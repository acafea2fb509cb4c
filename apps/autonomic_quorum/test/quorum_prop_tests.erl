%%% @doc PropEr properties of the quorum manager's pure core:
%%% <ul>
%%%   <li>any two weighted majorities of one member set intersect;</li>
%%%   <li>a change that `quorum_rules:validate_change/4' accepts leaves members that were a
%%%       weighted majority of the old ones, and advances the epoch by one;</li>
%%%   <li>Paxos (`quorum_paxos', driven as the manager and proposer drive it) chooses at most one
%%%       value per epoch, under any interleaving of two or three competing proposers with
%%%       retries, lost and duplicated messages;</li>
%%%   <li>the quorum rule (`quorum_rules:evaluate/1') never lets two groups that cannot see each
%%%       other both claim quorum, whatever mix of epochs (one or two changes decided, nodes
%%%       behind, pending values, unfinished values) the nodes are in.</li>
%%% </ul>
-module(quorum_prop_tests).

-include_lib("proper/include/proper.hrl").
-include_lib("eunit/include/eunit.hrl").

-define(POOL, ['n1@h', 'n2@h', 'n3@h', 'n4@h', 'n5@h', 'n6@h', 'n7@h']).

majorities_intersect_test_() ->
    {timeout, 120, ?_assert(proper:quickcheck(prop_majorities_intersect(), [{numtests, 2000}, {to_file, user}]))}.

valid_changes_are_safe_test_() ->
    {timeout, 120, ?_assert(proper:quickcheck(prop_valid_changes_are_safe(), [{numtests, 2000}, {to_file, user}]))}.

paxos_chooses_one_value_test_() ->
    {timeout, 300, ?_assert(proper:quickcheck(prop_paxos_chooses_one_value(), [{numtests, 1500}, {to_file, user}]))}.

no_disjoint_quorums_test_() ->
    {timeout, 300, ?_assert(proper:quickcheck(prop_no_disjoint_quorums(), [{numtests, 5000}, {to_file, user}]))}.

%%% Majorities

prop_majorities_intersect() ->
    ?FORALL({W, S1, S2}, ?LET(W, weights(), {W, subset(maps:keys(W)), subset(maps:keys(W))}),
            not (quorum_rules:is_majority(W, S1) andalso quorum_rules:is_majority(W, S2))
                orelse (S1 -- (S1 -- S2)) =/= []).

%%% Validation

prop_valid_changes_are_safe() ->
    ?FORALL({Config, Add, Remove}, change(),
            case quorum_rules:validate_change(Config, Add, Remove, ?POOL) of
                {ok, {AddW, Rm} = Change} ->
                    #{members := Old} = Config,
                    #{epoch := E1, members := New} = quorum_rules:apply_change(Config, Change, #{reason => manual, id => p}),
                    Kept = maps:keys(maps:without(Rm, Old)),
                    Kept =/= [] andalso quorum_rules:is_majority(Old, Kept)
                        andalso E1 =:= maps:get(epoch, Config) + 1
                        andalso maps:size(New) > 0
                        andalso lists:all(fun(N) -> is_map_key(N, New) end, maps:keys(AddW));
                {error, _} ->
                    true
            end).

change() ->
    ?LET({W, Standby}, {weights(), weights()},
         {#{epoch => 3, members => W, standby => maps:without(maps:keys(W), Standby)},
          list(oneof([elements(?POOL), {elements(?POOL), integer(-1, 3)}])),
          list(elements(?POOL))}).

%%% Paxos

%% Acceptors with weights; 2 or 3 proposers, each with its own value; a list of choices picks, at
%% every step, one of the enabled actions: a proposer (re)starts with a higher ballot, a message
%% is delivered, dropped, or delivered and kept (duplicated).
prop_paxos_chooses_one_value() ->
    ?FORALL({W, NP, Choices}, {weights(), integer(2, 3), ?SIZED(Size, vector(4 * Size, integer(0, 1000)))},
            begin
                Props = maps:from_list([{P, #{value => {value_of, P}, ballot => none, phase => idle,
                                              replies => [], starts => 0}}
                                        || P <- lists:sublist(['p1@h', 'p2@h', 'p3@h'], NP)]),
                S0 = #{w => W, acc => maps:map(fun(_, _) -> quorum_paxos:new(1) end, W), props => Props,
                       net => [], log => [], decided => [], max_round => 0},
                S = lists:foldl(fun step/2, S0, Choices),
                Chosen = chosen(S),
                Decided = maps:get(decided, S),
                Outcome = {chosen, length(lists:usort(Chosen)), proposers_decided, length(lists:usort(Decided)),
                           contended, length([P || {P, #{starts := N}} <- maps:to_list(maps:get(props, S)), N > 0]) > 1},
                ?WHENFAIL(io:format(user, "chosen ~p decided ~p~n", [Chosen, Decided]),
                          collect(Outcome, length(lists:usort(Chosen ++ Decided)) =< 1))
            end).

step(C, #{props := Props, net := Net} = S) ->
    Starts = [{start, P} || {P, #{starts := N}} <- maps:to_list(Props), N < 3],
    Msgs = lists:append([[{deliver, I}, {drop, I}, {dup, I}] || I <- lists:seq(1, length(Net))]),
    case Starts ++ Msgs of
        [] -> S;
        Enabled -> act(lists:nth(C rem length(Enabled) + 1, Enabled), S)
    end.

act({start, P}, #{props := Props, w := W, max_round := M} = S) ->
    #{starts := N} = Prop = maps:get(P, Props),
    Ballot = {M + 1, P, N},
    Msgs = [{acceptor, A, {prepare, P, Ballot}} || A <- maps:keys(W)],
    S#{props := Props#{P := Prop#{ballot := Ballot, phase := prepare, replies := [], starts := N + 1}},
       net := maps:get(net, S) ++ Msgs, max_round := M + 1};
act({deliver, I}, #{net := Net} = S) ->
    {Msg, Rest} = take(I, Net),
    deliver(Msg, S#{net := Rest});
act({drop, I}, #{net := Net} = S) ->
    {_, Rest} = take(I, Net),
    S#{net := Rest};
act({dup, I}, #{net := Net} = S) ->
    deliver(lists:nth(I, Net), S).

take(I, List) ->
    {Before, [X | After]} = lists:split(I - 1, List),
    {X, Before ++ After}.

deliver({acceptor, A, {prepare, P, B}}, #{acc := Acc} = S) ->
    case quorum_paxos:prepare(maps:get(A, Acc), B) of
        {promise, Accepted, A1} -> send({proposer, P, {A, B, {promise, Accepted}}}, S#{acc := Acc#{A := A1}});
        {reject, Promised} -> send({proposer, P, {A, B, {reject, Promised}}}, S)
    end;
deliver({acceptor, A, {accept, P, B, V}}, #{acc := Acc, log := Log} = S) ->
    Acceptor = maps:get(A, Acc),
    case quorum_paxos:check_accept(Acceptor, B) of
        ok ->
            send({proposer, P, {A, B, {accepted, B}}},
                 S#{acc := Acc#{A := quorum_paxos:accept(Acceptor, B, V)}, log := [{A, B, V} | Log]});
        {reject, Promised} ->
            send({proposer, P, {A, B, {reject, Promised}}}, S)
    end;
deliver({proposer, P, {A, B, Reply}}, #{props := Props, w := W} = S) ->
    case maps:get(P, Props) of
        #{ballot := B, phase := prepare, replies := Replies} = Prop ->
            Replies1 = [{A, Reply} | Replies],
            case quorum_paxos:tally_promises(W, Replies1) of
                {quorum, Prior} ->
                    V = case Prior of
                        none -> maps:get(value, Prop);
                        {_, Earlier} -> Earlier
                    end,
                    Msgs = [{acceptor, X, {accept, P, B, V}} || X <- maps:keys(W)],
                    S#{props := Props#{P := Prop#{phase := {accept, V}, replies := []}},
                       net := maps:get(net, S) ++ Msgs};
                no_quorum ->
                    S#{props := Props#{P := Prop#{replies := Replies1}}}
            end;
        #{ballot := B, phase := {accept, V}, replies := Replies} = Prop ->
            Replies1 = [{A, Reply} | Replies],
            case quorum_paxos:tally_accepts(W, B, Replies1) of
                true ->
                    S#{props := Props#{P := Prop#{phase := done}}, decided := [V | maps:get(decided, S)]};
                false ->
                    S#{props := Props#{P := Prop#{replies := Replies1}}}
            end;
        _ ->
            S
    end.

send(Msg, #{net := Net} = S) ->
    S#{net := Net ++ [Msg]}.

%% Every value that a weighted majority accepted at one ballot, at any time.
chosen(#{log := Log, w := W}) ->
    Ballots = lists:usort([{B, V} || {_, B, V} <- Log]),
    [V || {B, V} <- Ballots,
          quorum_rules:is_majority(W, lists:usort([A || {A, B1, _} <- Log, B1 =:= B]))].

%%% The quorum rule across epochs

%% Epoch 5 is in force; its successor V6 was decided by a weighted majority A1 of its members,
%% and possibly V7 after it by a majority A2 of V6's members. Every node is in a state that the
%% protocol allows (an acceptor of A1 is at 5 with V6 pending, or later; a node behind is at 4),
%% and knows its peers' current states (the acceptor's notice before it accepts guarantees it).
%% The nodes split into two groups that cannot see each other; each node evaluates its quorum
%% against the peers of its group. Never may a node of each group claim quorum.
prop_no_disjoint_quorums() ->
    ?FORALL(Scenario, scenario(),
            begin
                #{states := States, side := Side} = Scenario,
                Claims = [{N, maps:get(N, Side)} || N <- maps:keys(States), have_quorum(N, Scenario)],
                Sides = lists:usort([G || {_, G} <- Claims]),
                ?WHENFAIL(io:format(user, "claims ~p~nscenario ~p~n", [Claims, Scenario]),
                          length(Sides) =< 1)
            end).

have_quorum(N, #{states := States, side := Side}) ->
    #{config := Config, pending := Pending} = maps:get(N, States),
    Peers = maps:from_list([{P, St} || {P, St} <- maps:to_list(States), P =/= N,
                                       maps:get(P, Side) =:= maps:get(N, Side)]),
    maps:get(have_quorum, quorum_rules:evaluate(#{self => N, config => Config, pending => Pending, peers => Peers})).

scenario() ->
    ?LET({C5W, V6W, V7W, A1Seed, A2Seed, Stages, Sides, Junk, Two},
         {weights(), weights(), weights(), subset(?POOL), subset(?POOL),
          [{N, integer(4, 7)} || N <- ?POOL], [{N, boolean()} || N <- ?POOL],
          [{N, boolean()} || N <- ?POOL], boolean()},
         build(C5W, V6W, V7W, A1Seed, A2Seed, maps:from_list(Stages), maps:from_list(Sides), maps:from_list(Junk), Two)).

build(C5W, V6W, V7W, A1Seed, A2Seed, Stages, Sides, Junk, Two) ->
    C4 = cfg(4, C5W, c4),
    C5 = cfg(5, C5W, c5),
    V6 = cfg(6, V6W, v6),
    V7 = cfg(7, V7W, v7),
    W6 = cfg(6, maps:merge(C5W, #{'n7@h' => 3}), junk),
    A1 = complete_majority(C5W, A1Seed),
    A2 = case Two of
        true -> complete_majority(V6W, A2Seed);
        false -> []
    end,
    MaxStage = case Two of true -> 7; false -> 6 end,
    States = maps:from_list(
        [{N, state(N, min(maps:get(N, Stages), MaxStage), lists:member(N, A1), lists:member(N, A2),
                   maps:get(N, Junk), #{c4 => C4, c5 => C5, v6 => V6, v7 => V7, w6 => W6})}
         || N <- ?POOL]),
    #{states => States, side => Sides, a1 => A1, a2 => A2}.

%% The state of a node at a stage, made consistent with what it accepted.
state(_N, Stage, InA1, InA2, Junk, #{c4 := C4, c5 := C5, v6 := V6, v7 := V7, w6 := W6}) ->
    Stage1 = if
        InA2 -> max(Stage, 6);
        InA1 -> max(Stage, 5);
        true -> Stage
    end,
    case Stage1 of
        4 -> #{epoch => 4, config => C4, pending => [C5 || Junk]};
        5 when InA1 -> #{epoch => 5, config => C5, pending => [V6]};
        5 -> #{epoch => 5, config => C5, pending => [W6 || Junk]};
        6 when InA2 -> #{epoch => 6, config => V6, pending => [V7]};
        6 -> #{epoch => 6, config => V6, pending => [V7#{change => junk} || Junk]};
        7 -> #{epoch => 7, config => V7, pending => []}
    end.

cfg(Epoch, W, Tag) ->
    #{epoch => Epoch, members => W, standby => #{}, change => #{id => Tag}}.

%% Adds members (in pool order) until the set is a weighted majority.
complete_majority(W, Seed) ->
    Start = [N || N <- Seed, is_map_key(N, W)],
    lists:foldl(fun(N, Acc) ->
                        case quorum_rules:is_majority(W, Acc) orelse lists:member(N, Acc) of
                            true -> Acc;
                            false -> [N | Acc]
                        end
                end, Start, lists:sort(maps:keys(W))).

%%% Generators

weights() ->
    ?LET(Members, non_empty(subset(?POOL)),
         ?LET(Ws, vector(length(Members), integer(1, 3)), maps:from_list(lists:zip(Members, Ws)))).

subset(List) ->
    ?LET(Flags, [boolean() || _ <- List], [X || {X, true} <- lists:zip(List, Flags)]).
