%%% @doc EUnit tests of the suites' invariant checker (`quorum_ct:violations/2'): it must catch
%%% what it is there to catch, or the suites' silence would mean nothing.
-module(quorum_checker_tests).

-include_lib("eunit/include/eunit.hrl").

s(Epoch, Members, Reachable, HaveQuorum) ->
    #{epoch => Epoch, members => Members, reachable => Reachable, have_quorum => HaveQuorum,
      quorum_size => 3, leader => undefined, mode => case HaveQuorum of true -> normal; false -> minority end}.

five() -> [a, b, c, d, e].

violations_test_() ->
    Whole = [{N, s(1, five(), five(), true)} || N <- five()],
    Split = [{N, s(1, five(), [a, b], false)} || N <- [a, b]] ++ [{N, s(1, five(), [c, d, e], true)} || N <- [c, d, e]],
    TwoQuorums = [{a, s(1, five(), [a, b], true)}, {c, s(2, [c, d, e], [c, d, e], true)}],
    Overlapping = [{a, s(1, five(), [a, b, c], true)}, {e, s(2, [c, d, e], [c, d, e], true)}],
    Forked = [{a, s(3, five(), five(), true)}, {b, s(3, [a, b, c], five(), true)}],
    [?_assertEqual([], quorum_ct:violations(Whole, undefined)),
     ?_assertEqual([], quorum_ct:violations(Split, [[a, b], [c, d, e]])),
     ?_assertMatch([{disjoint_groups_with_quorum, {a, _}, {c, _}}], quorum_ct:violations(TwoQuorums, undefined)),
     ?_assertEqual([], quorum_ct:violations(Overlapping, undefined)),
     ?_assertMatch([{both_sides_have_quorum, [a], [e]}], quorum_ct:violations(Overlapping, [[a, b], [c, d, e]])),
     ?_assertMatch([{two_memberships_in_one_epoch, 3, _, _}], quorum_ct:violations(Forked, undefined))].
