%%% @doc EUnit tests of the Paxos acceptor and tallies (`quorum_paxos').
-module(quorum_paxos_tests).

-include_lib("eunit/include/eunit.hrl").

b(R, N) -> {R, N, {N, R}}.

acceptor_test_() ->
    A0 = quorum_paxos:new(3),
    {promise, none, A1} = quorum_paxos:prepare(A0, b(1, 'p@h')),
    A2 = quorum_paxos:accept(A1, b(1, 'p@h'), v1),
    {promise, {B1, v1}, A3} = quorum_paxos:prepare(A2, b(2, 'q@h')),
    [?_assertEqual(3, quorum_paxos:slot(A0)),
     ?_assertEqual(b(1, 'p@h'), quorum_paxos:promised(A1)),
     %% The same ballot again is promised again; a lower one is rejected.
     ?_assertMatch({promise, none, _}, quorum_paxos:prepare(A1, b(1, 'p@h'))),
     ?_assertEqual({reject, b(1, 'p@h')}, quorum_paxos:prepare(A1, b(0, 'z@h'))),
     ?_assertEqual({b(1, 'p@h'), v1}, quorum_paxos:accepted(A2)),
     ?_assertEqual(b(1, 'p@h'), B1),
     %% After promising 2, an accept at 1 is rejected; at 2 or higher it is taken.
     ?_assertEqual({reject, b(2, 'q@h')}, quorum_paxos:check_accept(A3, b(1, 'p@h'))),
     ?_assertEqual(ok, quorum_paxos:check_accept(A3, b(2, 'q@h'))),
     ?_assertEqual({b(3, 'r@h'), v3}, quorum_paxos:accepted(quorum_paxos:accept(A3, b(3, 'r@h'), v3))),
     ?_assertError({badmatch, _}, quorum_paxos:accept(A3, b(1, 'p@h'), v1)),
     %% Ballots: above everything seen; ties broken by node, then by proposal.
     ?_assertEqual({3, 'z@h', id}, quorum_paxos:next_ballot(A3, 0, {'z@h', id})),
     ?_assertEqual({8, 'z@h', id}, quorum_paxos:next_ballot(A3, 7, {'z@h', id})),
     ?_assert(b(2, 'q@h') > b(2, 'p@h')),
     ?_assertEqual(0, quorum_paxos:ballot_round(none))].

tally_test_() ->
    W = #{'a@h' => 1, 'b@h' => 1, 'c@h' => 2},
    [?_assertEqual(no_quorum, quorum_paxos:tally_promises(W, [{'a@h', {promise, none}}, {'b@h', {promise, none}}])),
     ?_assertEqual({quorum, none}, quorum_paxos:tally_promises(W, [{'a@h', {promise, none}}, {'c@h', {promise, none}}])),
     ?_assertEqual({quorum, {b(5, 'x@h'), v5}},
                   quorum_paxos:tally_promises(W, [{'a@h', {promise, {b(2, 'y@h'), v2}}}, {'c@h', {promise, {b(5, 'x@h'), v5}}},
                                                   {'b@h', {busy, b(9, 'z@h')}}])),
     %% Promises from non-members do not count.
     ?_assertEqual(no_quorum, quorum_paxos:tally_promises(W, [{'a@h', {promise, none}}, {'zz@h', {promise, none}},
                                                              {'b@h', {error, timeout}}])),
     ?_assert(quorum_paxos:tally_accepts(W, b(1, 'p@h'), [{'c@h', {accepted, b(1, 'p@h')}}, {'a@h', {accepted, b(1, 'p@h')}}])),
     ?_assertNot(quorum_paxos:tally_accepts(W, b(1, 'p@h'), [{'c@h', {accepted, b(1, 'p@h')}}, {'a@h', {accepted, b(2, 'p@h')}}]))].
