%%% @doc The chaos schedule's decisions, pure: whether a new fault may start now, which scenario
%%% (by weight, from a seeded random state, so a seed replays the same choices), and which
%%% victims safe mode allows.
%%%
%%% Safe mode: never the coordinator's node (the loop's coordinator, or the quorum leader before
%%% the loop exists), and never a fault that leaves fewer live nodes than a majority of the
%%% cluster (a node kill needs a majority after it; a partition's minority side holds fewer than
%%% half and never the coordinator).
-module(chaos_schedule).

-export([new/1, may_inject/1, pick/3, victims/2, uniform/2]).

-type scenario() :: atom().
-type rand_state() :: rand:state().
-export_type([scenario/0]).

%% @doc The random state for a seed (`random' draws one from the clock).
-spec new(random | non_neg_integer()) -> {non_neg_integer(), rand_state()}.
new(random) ->
    new(erlang:phash2({erlang:system_time(), make_ref()}));
new(Seed) when is_integer(Seed), Seed >= 0 ->
    {Seed, rand:seed_s(exsss, Seed)}.

%% @doc Whether a fault may start: `ok' or `{wait, Why}'. Input: `active' (faults not finished),
%% `max_concurrent', `pause_on_alert', `alert' (an SLO alert firing), `operations' (the loop's
%% operations in progress), `pending' (experiments awaiting approval).
-spec may_inject(#{active := non_neg_integer(), max_concurrent := pos_integer(),
                   pause_on_alert := boolean(), alert := boolean(), operations := non_neg_integer(),
                   pending => non_neg_integer()}) -> ok | {wait, atom()}.
may_inject(#{active := A, max_concurrent := M}) when A >= M ->
    {wait, max_concurrent};
may_inject(#{pending := P}) when P > 0 ->
    {wait, awaiting_approval};
may_inject(#{pause_on_alert := true, alert := true}) ->
    {wait, alert_firing};
may_inject(#{pause_on_alert := true, operations := N}) when N > 0 ->
    {wait, operation_in_progress};
may_inject(_) ->
    ok.

%% @doc Picks a scenario among `Eligible' by `Weights' (absent or 0: never); `none' when no
%% eligible scenario has weight.
-spec pick(#{scenario() => number()}, [scenario()], rand_state()) -> {scenario() | none, rand_state()}.
pick(Weights, Eligible, R) ->
    Ws = [{S, W} || S <- lists:sort(Eligible), W <- [maps:get(S, Weights, 0)], W > 0],
    Total = lists:sum([W || {_, W} <- Ws]),
    case Ws of
        [] -> {none, R};
        _ ->
            {X, R1} = rand:uniform_s(R),
            {choose(X * Total, Ws), R1}
    end.

choose(_, [{S, _}]) -> S;
choose(X, [{S, W} | _]) when X < W -> S;
choose(X, [{_, W} | T]) -> choose(X - W, T).

%% @doc One element of a non-empty list, uniformly.
-spec uniform([T], rand_state()) -> {T, rand_state()}.
uniform(L, R) ->
    {I, R1} = rand:uniform_s(length(L), R),
    {lists:nth(I, L), R1}.

%% @doc The victims a scenario may take: `[node()]' for node faults, `[{[node()], [node()]}]'
%% (minority, majority) for a partition. Input: `all' (the cluster's nodes), `live', `safe_mode',
%% `protected' (the coordinator's node, when known).
-spec victims(scenario(), #{all := [node()], live := [node()], safe_mode := boolean(),
                            protected := [node()]}) -> [node() | {[node()], [node()]}].
victims(network_partition, #{all := All, live := Live, safe_mode := Safe, protected := P}) ->
    Majority = length(All) div 2 + 1,
    %% Minorities of one node (the nodes are symmetric; one is enough to exercise the split).
    [{[V], lists:sort(Live -- [V])} || V <- lists:sort(Live), length(Live) - 1 >= Majority,
                                        not (Safe andalso lists:member(V, P))];
victims(node_kill, #{all := All, live := Live, safe_mode := Safe, protected := P}) ->
    Majority = length(All) div 2 + 1,
    case Safe andalso length(Live) - 1 < Majority of
        true -> [];
        false -> [V || V <- lists:sort(Live), not (Safe andalso lists:member(V, P))]
    end;
victims(_, #{live := Live, safe_mode := Safe, protected := P}) ->
    [V || V <- lists:sort(Live), not (Safe andalso lists:member(V, P))].
