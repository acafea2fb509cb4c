%%% @doc Crash recovery, pure: from the journal's receipts (the `loop.operation.<state>' and
%%% `loop.action' receipts a new coordinator reads from its own ledger), what to do with every
%%% operation that has no final receipt.
%%%
%%% | last state recorded | decision |
%%% |---|---|
%%% | `init', `locked', `safety_check' | `abandon': nothing was executed; record `rolled_back' (nothing to undo) |
%%% | `in_progress', `verifying' | `verify': verify now; recovered: `completed', else roll back the actions recorded (`loop.action') and record `rolled_back' |
%%% | `paused_for_human_review' | `review': the operation waits for a human again |
%%% | a final state | nothing |
-module(autonomic_loop_recovery).

-export([unfinished/1]).

%% @doc `Receipts': `[{Seq, Action, Detail}]' in ledger order. Returns, for each operation
%% without a final receipt, `{Decision, Op}' with `Op' the detail of its last state receipt plus
%% `actions', the details of its `loop.action' receipts in order.
-spec unfinished([{non_neg_integer(), binary(), map()}]) -> [{abandon | verify | review, map()}].
unfinished(Receipts) ->
    {Ops, Actions} = lists:foldl(fun collect/2, {#{}, #{}}, Receipts),
    lists:sort(fun({_, #{started_at := A}}, {_, #{started_at := B}}) -> A =< B end,
               [{decision(maps:get(state, Op)), Op#{actions => lists:reverse(maps:get(Id, Actions, []))}}
                || {Id, Op} <- maps:to_list(Ops), not autonomic_loop_op:final(maps:get(state, Op))]).

collect({_Seq, <<"loop.operation.", _/binary>>, #{op := Id, state := _} = D}, {Ops, Actions}) ->
    Prev = maps:get(Id, Ops, #{}),
    %% Later receipts win, but an operation keeps what earlier ones said (its plan, its start).
    {maps:put(Id, maps:merge(Prev, D#{started_at => maps:get(started_at, Prev, maps:get(started_at, D, maps:get(at, D, 0)))}), Ops), Actions};
collect({_Seq, <<"loop.action">>, #{op := Id} = D}, {Ops, Actions}) ->
    {Ops, maps:update_with(Id, fun(L) -> [D | L] end, [D], Actions)};
collect(_Other, Acc) ->
    Acc.

decision(S) when S =:= init; S =:= locked; S =:= safety_check -> abandon;
decision(S) when S =:= in_progress; S =:= verifying -> verify;
decision(paused_for_human_review) -> review.
