%%% @doc EUnit tests of the quorum manager's pure decisions (`quorum_rules'): weighted
%%% majorities, validation and application of changes, the quorum rule with pending values,
%%% modes, leader choice, and the failure handler's plan.
-module(quorum_rules_tests).

-include_lib("eunit/include/eunit.hrl").

-define(A, 'a@h').
-define(B, 'b@h').
-define(C, 'c@h').
-define(D, 'd@h').
-define(E, 'e@h').

five() -> #{?A => 1, ?B => 1, ?C => 1, ?D => 1, ?E => 1}.

config(Epoch, Members) -> #{epoch => Epoch, members => Members, standby => #{}}.

%%% Weights and majorities

weights_test_() ->
    W = #{?A => 3, ?B => 1, ?C => 1},
    [?_assertEqual(5, quorum_rules:total_weight(W)),
     ?_assertEqual(3, quorum_rules:quorum_size(W)),
     ?_assertEqual(3, quorum_rules:quorum_size(five())),
     ?_assertEqual(3, quorum_rules:quorum_size(#{?A => 1, ?B => 1, ?C => 1, ?D => 1})),
     ?_assert(quorum_rules:is_majority(W, [?A])),
     ?_assertNot(quorum_rules:is_majority(W, [?B, ?C])),
     ?_assertNot(quorum_rules:is_majority(#{?A => 1, ?B => 1}, [?A])),
     ?_assert(quorum_rules:is_majority(five(), [?A, ?B, ?C])),
     ?_assertNot(quorum_rules:is_majority(five(), [?A, ?B, 'stranger@h'])),
     ?_assertEqual(2, quorum_rules:weight_of(five(), [?A, ?A, ?B, 'x@h'])),
     ?_assertNot(quorum_rules:is_majority(#{}, []))].

parse_members_test_() ->
    [?_assertEqual({ok, #{?A => 1, ?B => 2}}, quorum_rules:parse_members([?A, {?B, 2}])),
     ?_assertEqual({error, no_members}, quorum_rules:parse_members([])),
     ?_assertEqual({error, {not_a_list, x}}, quorum_rules:parse_members(x)),
     ?_assertEqual({error, {duplicate_node, ?A}}, quorum_rules:parse_members([?A, {?A, 2}])),
     ?_assertEqual({error, {invalid_weight, ?A, 0}}, quorum_rules:parse_members([{?A, 0}])),
     ?_assertEqual({error, {invalid_weight, ?A, -1}}, quorum_rules:parse_members([{?A, -1}])),
     ?_assertEqual({error, {invalid_weight, ?A, 1.0}}, quorum_rules:parse_members([{?A, 1.0}])),
     ?_assertEqual({error, {invalid_node, nohost}}, quorum_rules:parse_members([nohost])),
     ?_assertEqual({error, {invalid_node, "a@h"}}, quorum_rules:parse_members(["a@h"]))].

%%% Changes

validate_change_test_() ->
    C = (config(3, five()))#{standby => #{'s@h' => 2}},
    Connected = [?A, ?B, ?C, ?D, ?E, 'new@h'],
    V = fun(Add, Remove) -> quorum_rules:validate_change(C, Add, Remove, Connected) end,
    [?_assertEqual({error, {not_a_list, x}}, V(x, [])),
     ?_assertEqual({error, {not_a_list, y}}, V([], y)),
     ?_assertEqual({error, empty_change}, V([], [])),
     ?_assertEqual({error, {invalid_node, 7}}, V([7], [])),
     ?_assertEqual({error, {invalid_weight, 'new@h', 0}}, V([{'new@h', 0}], [])),
     ?_assertEqual({error, {invalid_weight, 'new@h', -3}}, V([{'new@h', -3}], [])),
     ?_assertEqual({error, {invalid_node, "e@h"}}, V([], ["e@h"])),
     ?_assertEqual({error, {duplicate_node, ?E}}, V([], [?E, ?E])),
     ?_assertEqual({error, {duplicate_node, 'new@h'}}, V(['new@h', {'new@h', 2}], [])),
     ?_assertEqual({error, {already_member, ?A}}, V([?A], [])),
     ?_assertEqual({error, {unknown_node, 'far@h'}}, V(['far@h'], [])),
     ?_assertEqual({error, {unknown_node, 'far@h'}}, V([], ['far@h'])),
     ?_assertEqual({error, no_members_left}, V([], [?A, ?B, ?C, ?D, ?E])),
     ?_assertEqual({error, no_members_left}, V(['new@h'], [?A, ?B, ?C, ?D, ?E])),
     ?_assertEqual({error, {unsafe_removal, #{remaining_weight => 2, total_weight => 5}}}, V([], [?C, ?D, ?E])),
     ?_assertEqual({ok, {#{'new@h' => 1}, []}}, V(['new@h'], [])),
     ?_assertEqual({ok, {#{'new@h' => 4}, [?D, ?E]}}, V([{'new@h', 4}], [?E, ?D])),
     %% A standby node can be forgotten, and a connected standby node added back.
     ?_assertEqual({ok, {#{}, ['s@h']}}, V([], ['s@h']))].

weighted_removal_test_() ->
    C = config(1, #{?A => 3, ?B => 1, ?C => 1}),
    V = fun(Remove) -> quorum_rules:validate_change(C, [], Remove, []) end,
    [?_assertMatch({ok, _}, V([?B, ?C])),
     ?_assertEqual({error, {unsafe_removal, #{remaining_weight => 2, total_weight => 5}}}, V([?A]))].

apply_change_test_() ->
    C = (config(7, five()))#{standby => #{'s@h' => 2, 't@h' => 1}},
    Lost = quorum_rules:apply_change(C, {#{}, [?D, ?E]}, #{reason => node_loss, id => x}),
    Manual = quorum_rules:apply_change(C, {#{}, [?D, 't@h']}, #{reason => manual, id => y}),
    Back = quorum_rules:apply_change(C, {#{'s@h' => 2}, []}, #{reason => rejoin, id => z}),
    [?_assertMatch(#{epoch := 8, members := #{?A := 1, ?B := 1, ?C := 1},
                     standby := #{?D := 1, ?E := 1, 's@h' := 2, 't@h' := 1},
                     change := #{add := [], remove := [?D, ?E], reason := node_loss, id := x}}, Lost),
     ?_assertEqual(3, maps:size(maps:get(members, Lost))),
     ?_assertEqual(#{'s@h' => 2}, maps:get(standby, Manual)),
     ?_assertEqual(4, maps:size(maps:get(members, Manual))),
     ?_assertMatch(#{members := #{'s@h' := 2}, standby := #{'t@h' := 1}}, Back),
     ?_assertEqual(1, maps:size(maps:get(standby, Back)))].

removable_test_() ->
    [?_assertEqual([?D, ?E], quorum_rules:removable(five(), [?D, ?E])),
     ?_assertEqual([?C, ?D], quorum_rules:removable(five(), [?C, ?D, ?E])),
     ?_assertEqual([?B], quorum_rules:removable(#{?A => 3, ?B => 1, ?C => 1}, [?A, ?B])),
     ?_assertEqual([], quorum_rules:removable(#{?A => 1}, [?A])),
     ?_assertEqual([?D], quorum_rules:removable(five(), [?D, ?D, 'x@h'])),
     ?_assert(quorum_rules:safe_removal(five(), [?A, ?B])),
     ?_assertNot(quorum_rules:safe_removal(five(), [?A, ?B, ?C]))].

%%% The quorum rule

peer(Epoch, Config) -> peer(Epoch, Config, []).
peer(Epoch, Config, Pending) -> #{epoch => Epoch, config => Config, pending => Pending}.

view(Self, Config, Pending, Peers) ->
    #{self => Self, config => Config, pending => Pending, peers => Peers}.

evaluate_majority_test_() ->
    C = config(4, five()),
    Two = quorum_rules:evaluate(view(?A, C, [], #{?B => peer(4, C)})),
    Three = quorum_rules:evaluate(view(?A, C, [], #{?B => peer(4, C), ?C => peer(4, C)})),
    [?_assertMatch(#{have_quorum := false, base_quorum := false, member := true, quorum_size := 3,
                     reachable := [?A, ?B], supporters := [?A, ?B]}, Two),
     ?_assertMatch(#{have_quorum := true, reachable := [?A, ?B, ?C], pending := []}, Three),
     ?_assertEqual(minority, quorum_rules:mode(Two, false)),
     ?_assertEqual(normal, quorum_rules:mode(Three, false)),
     ?_assertEqual(reconfiguring, quorum_rules:mode(Three, true))].

evaluate_weighted_test_() ->
    C = config(1, #{?A => 3, ?B => 1, ?C => 1}),
    [?_assertMatch(#{have_quorum := true}, quorum_rules:evaluate(view(?A, C, [], #{}))),
     ?_assertMatch(#{have_quorum := false}, quorum_rules:evaluate(view(?B, C, [], #{?C => peer(1, C)})))].

evaluate_not_a_member_test() ->
    C = config(2, #{?B => 1, ?C => 1}),
    Eval = quorum_rules:evaluate(view(?A, C, [], #{?B => peer(2, C), ?C => peer(2, C)})),
    ?assertMatch(#{have_quorum := false, member := false, reachable := [?A, ?B, ?C]}, Eval).

%% Who counts: peers at our epoch with our configuration, and peers one epoch behind; not peers
%% ahead (the manager adopts their configuration instead), two behind, or holding another
%% configuration for our epoch.
evaluate_who_counts_test_() ->
    C = config(5, five()),
    Other = config(5, #{?A => 1, ?B => 1, ?C => 1, ?D => 1}),
    Eval = fun(Peers) -> maps:get(supporters, quorum_rules:evaluate(view(?A, C, [], Peers))) end,
    [?_assertEqual([?A, ?B], Eval(#{?B => peer(5, C)})),
     ?_assertEqual([?A, ?B], Eval(#{?B => peer(4, config(4, five()))})),
     ?_assertEqual([?A], Eval(#{?B => peer(6, config(6, five()))})),
     ?_assertEqual([?A], Eval(#{?B => peer(3, config(3, five()))})),
     ?_assertEqual([?A], Eval(#{?B => peer(5, Other)}))].

%% A value pending for the next epoch needs a majority of its own members too.
evaluate_pending_test_() ->
    C = config(5, five()),
    V = #{epoch => 6, members => #{?A => 1, 'x@h' => 1, 'y@h' => 1}, standby => #{}},
    Peers = #{?B => peer(5, C, [V]), ?C => peer(5, C)},
    Eval = quorum_rules:evaluate(view(?A, C, [], Peers)),
    Own = quorum_rules:evaluate(view(?A, C, [V], #{?B => peer(5, C), ?C => peer(5, C)})),
    Fine = quorum_rules:evaluate(view(?A, C, [], #{?B => peer(5, C, [C#{epoch => 6}]), ?C => peer(5, C)})),
    %% A pending value from a peer at another epoch is about another slot: ignored.
    Old = quorum_rules:evaluate(view(?A, C, [], #{?B => peer(4, config(4, five()), [V#{epoch => 5}]), ?C => peer(5, C)})),
    [?_assertMatch(#{have_quorum := false, base_quorum := true, pending := [V]}, Eval),
     ?_assertMatch(#{have_quorum := false, base_quorum := true}, Own),
     ?_assertMatch(#{have_quorum := true, pending := [_]}, Fine),
     ?_assertEqual(reconfiguring, quorum_rules:mode(Fine, false)),
     ?_assertMatch(#{have_quorum := true, pending := []}, Old)].

%%% Leader, comparison

choose_leader_test_() ->
    W = #{?A => 1, ?B => 2, ?C => 2},
    [?_assertEqual(?B, quorum_rules:choose_leader(W, [?A, ?B, ?C])),
     ?_assertEqual(?C, quorum_rules:choose_leader(W, [?A, ?C])),
     ?_assertEqual(?A, quorum_rules:choose_leader(five(), [?E, ?C, ?A])),
     ?_assertEqual(?A, quorum_rules:choose_leader(W, [?A, 'stranger@h'])),
     ?_assertEqual(undefined, quorum_rules:choose_leader(W, ['stranger@h']))].

compare_test_() ->
    C = config(5, five()),
    [?_assertEqual(newer, quorum_rules:compare(C#{epoch := 6}, C)),
     ?_assertEqual(older, quorum_rules:compare(C#{epoch := 4}, C)),
     ?_assertEqual(same, quorum_rules:compare(C#{change => #{}}, C)),
     ?_assertEqual(conflict, quorum_rules:compare(C#{members := #{?A => 1}}, C))].

%%% The failure handler

plan_opts(Now) -> #{self => ?A, now => Now, grace_ms => 1000, rejoin_after_ms => 500, batch_ms => 200}.

plan_test_() ->
    C = (config(2, five()))#{standby => #{'s@h' => 3}},
    Up = #{?B => {up, 0}, ?C => {up, 0}},
    [%% Down, but not for the grace period yet.
     ?_assertEqual(none, quorum_rules:plan(C, Up#{?D => {down, 100}}, plan_opts(1000))),
     ?_assertEqual({node_loss, {#{}, [?D]}}, quorum_rules:plan(C, Up#{?D => {down, 100}}, plan_opts(1100))),
     %% Lost together (within the batch window): removed together, longest down first.
     ?_assertEqual({node_loss, {#{}, [?D, ?E]}},
                   quorum_rules:plan(C, Up#{?D => {down, 100}, ?E => {down, 250}}, plan_opts(1100))),
     ?_assertEqual({node_loss, {#{}, [?D]}},
                   quorum_rules:plan(C, Up#{?D => {down, 100}, ?E => {down, 400}}, plan_opts(1100))),
     %% Never more than is safe.
     ?_assertEqual({node_loss, {#{}, [?B, ?C]}},
                   quorum_rules:plan(C, #{?B => {down, 0}, ?C => {down, 0}, ?D => {down, 0}}, plan_opts(5000))),
     %% Never itself.
     ?_assertEqual(none, quorum_rules:plan(C, #{?A => {down, 0}}, plan_opts(5000))),
     %% A standby node back for rejoin_after_ms is restored with its weight.
     ?_assertEqual(none, quorum_rules:plan(C, Up#{'s@h' => {up, 100}}, plan_opts(500))),
     ?_assertEqual({rejoin, {#{'s@h' => 3}, []}}, quorum_rules:plan(C, Up#{'s@h' => {up, 100}}, plan_opts(600))),
     ?_assertEqual({node_loss, {#{'s@h' => 3}, [?D]}},
                   quorum_rules:plan(C, Up#{'s@h' => {up, 0}, ?D => {down, 0}}, plan_opts(2000))),
     ?_assertEqual(none, quorum_rules:plan(C, Up#{'s@h' => {down, 0}}, plan_opts(9000)))].

next_deadline_test_() ->
    C = (config(2, five()))#{standby => #{'s@h' => 1}},
    O = fun(Now) -> #{now => Now, grace_ms => 1000, rejoin_after_ms => 500} end,
    [?_assertEqual(1100, quorum_rules:next_deadline(C, #{?D => {down, 100}, 's@h' => {up, 700}}, O(0))),
     ?_assertEqual(1200, quorum_rules:next_deadline(C, #{?D => {down, 100}, 's@h' => {up, 700}}, O(1100))),
     ?_assertEqual(infinity, quorum_rules:next_deadline(C, #{?D => {down, 100}}, O(1100))),
     ?_assertEqual(infinity, quorum_rules:next_deadline(C, #{?D => {up, 100}}, O(0)))].
