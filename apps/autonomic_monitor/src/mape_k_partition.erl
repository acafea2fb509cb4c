%%% @doc Partition analysis of a connectivity matrix, as pure functions.
%%%
%%% Input, as one node knows it:
%%% <ul>
%%%   <li>`rows': for every node whose row is fresh (it, or a node that heard from it, told us
%%%       recently), the nodes it sees (itself included or not: it is added);</li>
%%%   <li>`cut_off': nodes we lost the connection to that are nevertheless alive (their host's
%%%       epmd still lists them) or whose host could not be asked: they are on the other side of a
%%%       split, or at least we cannot tell they are not;</li>
%%%   <li>`unresponsive': nodes still connected but with no fresh row (suspected by the detector,
%%%       hung): unreachable, yet no evidence that anyone else talks to them.</li>
%%% </ul>
%%%
%%% Output: the groups of nodes that see each other (the maximal cliques of the graph where two
%%% nodes are linked when each sees the other, found with Bron-Kerbosch with pivoting), with the
%%% cut-off nodes as one more group (the other side of the split as far as we can tell); the
%%% nodes that cannot reach more than half of the members (the seed's rule); and the verdict.
%%% The cluster is partitioned when there is more than one group (any split, including
%%% overlapping groups where A sees B, B sees C but A and C do not see each other) or when some
%%% node cannot reach more than half of the members. Members are the nodes of the rows, the
%%% cut-off and the unresponsive nodes.
-module(mape_k_partition).

-export([analyze/1, groups/1]).

-export_type([input/0, analysis/0]).

-type input() :: #{rows := #{node() => [node()]}, cut_off => [node()], unresponsive => [node()]}.
-type analysis() :: #{
    partitioned := boolean(),
    groups := [[node()]],
    cut_off := [node()],
    unresponsive := [node()],
    majority_unreachable := [node()],
    members := [node()]
}.

%% @doc Analyzes a matrix; see the module documentation.
-spec analyze(input()) -> analysis().
analyze(#{rows := Rows} = In) ->
    CutOff = lists:usort(maps:get(cut_off, In, [])) -- maps:keys(Rows),
    Unresponsive = (lists:usort(maps:get(unresponsive, In, [])) -- maps:keys(Rows)) -- CutOff,
    Known = maps:keys(Rows),
    Members = lists:usort(Known ++ CutOff ++ Unresponsive),
    Groups = lists:sort(groups(Rows) ++ [CutOff || CutOff =/= []]),
    Half = length(Members) / 2,
    Majority = [N || N <- Known, length(Members -- seen(N, Rows)) > Half],
    #{
        partitioned => length(Groups) > 1 orelse Majority =/= [],
        groups => Groups,
        cut_off => CutOff,
        unresponsive => Unresponsive,
        majority_unreachable => Majority,
        members => Members
    }.

%% @doc The maximal groups of nodes that see each other (both ways), each sorted, the list
%% sorted. Nodes named only inside rows (never as a row's owner) are not placed: we know
%% nothing of what they see.
-spec groups(#{node() => [node()]}) -> [[node()]].
groups(Rows) ->
    Vertices = lists:sort(maps:keys(Rows)),
    Adj = maps:from_list(
        [{V, ordsets:from_list([U || U <- Vertices, U =/= V, mutual(U, V, Rows)])} || V <- Vertices]),
    lists:sort(bron_kerbosch([], Vertices, [], Adj, [])).

%%% Internals

seen(N, Rows) ->
    lists:usort([N | maps:get(N, Rows)]).

mutual(U, V, Rows) ->
    lists:member(V, maps:get(U, Rows)) andalso lists:member(U, maps:get(V, Rows)).

%% Bron-Kerbosch with pivoting (Tomita et al.): R the clique being built, P the candidates, X the
%% excluded; all ordsets. The pivot is the vertex of P or X with most neighbours in P.
bron_kerbosch(R, [], [], _Adj, Acc) ->
    [lists:sort(R) | Acc];
bron_kerbosch(_R, [], _X, _Adj, Acc) ->
    Acc;
bron_kerbosch(R, P, X, Adj, Acc) ->
    Pivot = pivot(ordsets:union(P, X), P, Adj),
    Candidates = ordsets:subtract(P, maps:get(Pivot, Adj)),
    {_, _, Acc1} = lists:foldl(
        fun(V, {P0, X0, A}) ->
            N = maps:get(V, Adj),
            A1 = bron_kerbosch([V | R], ordsets:intersection(P0, N), ordsets:intersection(X0, N), Adj, A),
            {ordsets:del_element(V, P0), ordsets:add_element(V, X0), A1}
        end,
        {P, X, Acc},
        Candidates),
    Acc1.

pivot(UX, P, Adj) ->
    {_, Best} = lists:max([{length(ordsets:intersection(P, maps:get(U, Adj))), U} || U <- UX]),
    Best.
