%%% @doc EUnit tests of partition analysis (`mape_k_partition'): groups of nodes that see each
%%% other, the majority rule and any split.
-module(mape_k_partition_tests).

-include_lib("eunit/include/eunit.hrl").

full(Nodes) -> maps:from_list([{N, Nodes} || N <- Nodes]).

whole_cluster_is_one_group_test() ->
    A = mape_k_partition:analyze(#{rows => full([a, b, c, d, e])}),
    ?assertMatch(#{partitioned := false, groups := [[a, b, c, d, e]], majority_unreachable := []}, A).

rows_need_not_list_their_owner_test() ->
    ?assertEqual([[a, b]], mape_k_partition:groups(#{a => [b], b => [a]})).

clean_split_seen_through_gossip_test() ->
    %% Two sides that each know the other's rows (e.g. through a node that left).
    Rows = maps:merge(full([a, b, c]), full([d, e])),
    ?assertMatch(#{partitioned := true, groups := [[a, b, c], [d, e]], majority_unreachable := [d, e]},
                 mape_k_partition:analyze(#{rows => Rows})).

overlapping_groups_test() ->
    %% a and c do not see each other; b sees both: two overlapping groups.
    Rows = #{a => [a, b], b => [a, b, c], c => [b, c]},
    ?assertMatch(#{partitioned := true, groups := [[a, b], [b, c]], majority_unreachable := []},
                 mape_k_partition:analyze(#{rows => Rows})).

one_way_visibility_is_not_seeing_each_other_test() ->
    ?assertEqual([[a], [b]], mape_k_partition:groups(#{a => [a, b], b => [b]})).

cut_off_nodes_form_the_other_group_test() ->
    %% Majority side of a 3|2 split: d and e are down here but alive.
    A = mape_k_partition:analyze(#{rows => full([a, b, c]), cut_off => [e, d]}),
    ?assertMatch(#{partitioned := true, groups := [[a, b, c], [d, e]], cut_off := [d, e],
                   majority_unreachable := [], members := [a, b, c, d, e]}, A).

minority_side_sees_the_majority_rule_test() ->
    A = mape_k_partition:analyze(#{rows => full([d, e]), cut_off => [a, b, c]}),
    ?assertMatch(#{partitioned := true, groups := [[a, b, c], [d, e]], majority_unreachable := [d, e]}, A).

lone_hung_node_is_not_a_partition_test() ->
    %% e is connected but suspected (no fresh row): unreachable, but nobody talks to it.
    Rows = maps:map(fun(_, _) -> [a, b, c, d] end, full([a, b, c, d])),
    ?assertMatch(#{partitioned := false, groups := [[a, b, c, d]], unresponsive := [e]},
                 mape_k_partition:analyze(#{rows => Rows, unresponsive => [e]})).

majority_hung_is_a_partition_test() ->
    %% Three of five nodes hung: a and b each miss more than half of the members.
    A = mape_k_partition:analyze(#{rows => full([a, b]), unresponsive => [c, d, e]}),
    ?assertMatch(#{partitioned := true, groups := [[a, b]], majority_unreachable := [a, b]}, A).

exactly_half_is_not_more_than_half_test() ->
    ?assertMatch(#{partitioned := false}, mape_k_partition:analyze(#{rows => full([a, b]), unresponsive => [c, d]})).

a_node_with_a_row_is_never_cut_off_test() ->
    ?assertMatch(#{cut_off := [], partitioned := false},
                 mape_k_partition:analyze(#{rows => full([a, b]), cut_off => [b]})).

maximal_cliques_test() ->
    %% Two triangles sharing an edge, plus a pendant node: {a,b,c}, {b,c,d}, {d,e}.
    Edges = [{a, b}, {a, c}, {b, c}, {b, d}, {c, d}, {d, e}],
    Rows = lists:foldl(fun({X, Y}, M) ->
                           maps:update_with(Y, fun(L) -> [X | L] end, [X], maps:update_with(X, fun(L) -> [Y | L] end, [Y], M))
                       end, #{}, Edges),
    ?assertEqual([[a, b, c], [b, c, d], [d, e]], mape_k_partition:groups(Rows)).

large_whole_cluster_is_fast_test() ->
    Nodes = [list_to_atom("n" ++ integer_to_list(I)) || I <- lists:seq(1, 100)],
    {Us, [[_ | _] = G]} = timer:tc(mape_k_partition, groups, [full(Nodes)]),
    ?assertEqual(100, length(G)),
    ?assert(Us < 1000000).
