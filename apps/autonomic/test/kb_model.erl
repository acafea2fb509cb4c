%%% @doc A pure Erlang model of the knowledge base, written from its definition (DESIGN.md
%%% section 3 and the `autonomic_kb' documentation) by brute force over `sets', independently of
%%% the Rust index. The PropEr tests check the NIF against it; the benchmark uses it as the
%%% "brute force in pure Erlang" alternative.
%%%
%%% Definitions: Jaccard similarity |A ∩ B| / |A ∪ B| (1.0 for two empty sets); results at or
%%% above the threshold, best first by score, then newer timestamp, then smaller id; the base
%%% keeps the newest `Max' records by `{timestamp, id}' (a record older than all of a full base
%%% is refused; the first content of an id wins); recommendation score (1 + S) / (2 + W) summed
%%% over the matches in result order; effectiveness over successful recoveries, mean summed in
%%% ascending order of the values, 95th percentile by nearest rank.
-module(kb_model).

-export([new/1, add/2, records/1, size/1, normalize/1]).
-export([prepare/1, similar/4, similar_prepared/4, jaccard/2]).
-export([recommend/3, effectiveness/2, success_rate/2]).

-export_type([model/0, prepared/0]).

-type failure() :: map().
-type model() :: #{max := pos_integer(), records := #{binary() => failure()}}.
-type prepared() :: [{sets:set(binary()), failure()}].

%%% The bounded set of records

-spec new(pos_integer()) -> model().
new(Max) ->
    #{max => Max, records => #{}}.

%% @doc Offers a record (normalized: symptoms sorted without duplicates).
-spec add(failure(), model()) -> model().
add(F0, #{max := Max, records := Recs} = M) ->
    F = normalize(F0),
    Id = maps:get(id, F),
    case maps:is_key(Id, Recs) of
        true ->
            M;
        false when map_size(Recs) < Max ->
            M#{records := Recs#{Id => F}};
        false ->
            {OldKey, OldId} = oldest(Recs),
            case key(F) > OldKey of
                true -> M#{records := maps:put(Id, F, maps:remove(OldId, Recs))};
                false -> M
            end
    end.

-spec records(model()) -> [failure()].
records(#{records := Recs}) ->
    maps:values(Recs).

-spec size(model()) -> non_neg_integer().
size(#{records := Recs}) ->
    map_size(Recs).

-spec normalize(failure()) -> failure().
normalize(#{symptoms := S} = F) ->
    F#{symptoms := lists:usort(S)}.

key(F) -> {maps:get(timestamp, F), maps:get(id, F)}.

oldest(Recs) ->
    maps:fold(
        fun(Id, F, none) -> {key(F), Id};
           (Id, F, {K, _} = Acc) ->
                case key(F) < K of
                    true -> {key(F), Id};
                    false -> Acc
                end
        end, none, Recs).

%%% Similarity

-spec jaccard(sets:set(binary()), sets:set(binary())) -> float().
jaccard(A, B) ->
    I = sets:size(sets:intersection(A, B)),
    case sets:size(A) + sets:size(B) - I of
        0 -> 1.0;
        U -> I / U
    end.

%% @doc Each record with its symptom set, built once (as a real Erlang implementation would).
-spec prepare([failure()]) -> prepared().
prepare(Records) ->
    [{sets:from_list(maps:get(symptoms, F), [{version, 2}]), normalize(F)} || F <- Records].

%% @doc The `Limit' (or `all') best records at or above `Threshold', best first.
-spec similar([failure()], [binary()], number(), pos_integer() | all) -> [{float(), failure()}].
similar(Records, Symptoms, Threshold, Limit) ->
    similar_prepared(prepare(Records), Symptoms, Threshold, Limit).

-spec similar_prepared(prepared(), [binary()], number(), pos_integer() | all) -> [{float(), failure()}].
similar_prepared(Prepared, Symptoms, Threshold, Limit) ->
    Q = sets:from_list(Symptoms, [{version, 2}]),
    Matches = [{S, F} || {Set, F} <- Prepared, (S = jaccard(Q, Set)) >= Threshold],
    Sorted = lists:sort(fun best_first/2, Matches),
    case Limit of
        all -> Sorted;
        _ -> lists:sublist(Sorted, Limit)
    end.

best_first({S1, _}, {S2, _}) when S1 =/= S2 -> S1 > S2;
best_first({_, F1}, {_, F2}) ->
    case {maps:get(timestamp, F1), maps:get(timestamp, F2)} of
        {T1, T2} when T1 =/= T2 -> T1 > T2;
        _ -> maps:get(id, F1) =< maps:get(id, F2)
    end.

%%% Recommendation and statistics

-spec recommend([failure()], [binary()], number()) -> [map()].
recommend(Records, Symptoms, Threshold) ->
    Matches = similar(Records, Symptoms, Threshold, all),
    Acc = lists:foldl(
        fun({S, #{strategy := St, success := Ok}}, A) ->
            {W, SW, Succ, Fail} = maps:get(St, A, {0.0, 0.0, 0, 0}),
            A#{St => case Ok of
                true -> {W + S, SW + S, Succ + 1, Fail};
                false -> {W + S, SW, Succ, Fail + 1}
            end}
        end, #{}, Matches),
    Recs = [#{strategy => St, score => (1.0 + SW) / (2.0 + W), weight => W, successes => Succ, failures => Fail}
            || {St, {W, SW, Succ, Fail}} <- maps:to_list(Acc)],
    lists:sort(
        fun(#{score := A, weight := WA, strategy := SA}, #{score := B, weight := WB, strategy := SB}) ->
            if A =/= B -> A > B;
               WA =/= WB -> WA > WB;
               true -> SA =< SB
            end
        end, Recs).

-spec effectiveness([failure()], atom()) -> map().
effectiveness(Records, Strategy) ->
    Mine = [F || #{strategy := S} = F <- Records, S =:= Strategy],
    Succ = length([ok || #{success := true} <- Mine]),
    Fail = length(Mine) - Succ,
    Times = lists:sort([float(Ms) + 0.0 || #{success := true, recovery_ms := Ms} <- Mine]),
    {Mean, P95} = case Times of
        [] ->
            {undefined, undefined};
        _ ->
            N = length(Times),
            Groups = group(Times),
            Sum = lists:foldl(fun({V, C}, Acc) -> Acc + V * float(C) end, 0.0, Groups),
            Rank = (95 * N + 99) div 100,
            {Sum / N, lists:nth(Rank, Times)}
    end,
    #{successes => Succ, failures => Fail,
      rate => case Succ + Fail of 0 -> undefined; T -> Succ / T end,
      mean_recovery_ms => Mean, p95_recovery_ms => P95}.

-spec success_rate([failure()], atom() | binary()) -> map().
success_rate(Records, Type) ->
    Mine = [F || #{failure_type := T} = F <- Records, T =:= Type],
    Succ = length([ok || #{success := true} <- Mine]),
    Fail = length(Mine) - Succ,
    #{successes => Succ, failures => Fail,
      rate => case Succ + Fail of 0 -> undefined; T -> Succ / T end}.

%% Equal values with their counts, ascending.
group([]) -> [];
group([V | T]) -> group(T, V, 1, []).

group([V | T], V, C, Acc) -> group(T, V, C + 1, Acc);
group([W | T], V, C, Acc) -> group(T, W, 1, [{V, C} | Acc]);
group([], V, C, Acc) -> lists:reverse([{V, C} | Acc]).
