%%% @doc The loop's journal is the ledger: every phase result, gate decision, action,
%%% verification and human decision is a receipt of the default `audit' ledger, its `action' a
%%% name under `loop.' and its `result' the detail map in the external term format
%%% (`term_to_binary(Detail, [deterministic, {minor_version, 2}])', like the actuator's receipts:
%%% exact Erlang terms, such as the actuator receipt ids and the targets a rollback needs).
%%%
%%% Names: `loop.operation.<state>' (one per state an operation enters: `init', `locked',
%%% `safety_check', `in_progress', `verifying', `completed', `rolled_back', `failed',
%%% `paused_for_human_review'), `loop.gate' (each gate's result), `loop.action' (each action an
%%% operation executed, with the node and the actuator's receipt id), `loop.verify',
%%% `loop.rollback', `loop.human' (approve, reject, pause, resume), `loop.knowledge',
%%% `loop.cycle' (a cycle's phase times) and `loop.recovery' (what a new coordinator decided for
%%% an operation it found unfinished).
%%%
%%% == Surviving the coordinator's node ==
%%% A ledger is per node, so a journal kept only on the coordinator's node would die with it.
%%% Every receipt is therefore appended on the coordinator's node and then on every other node
%%% with quorum that it reaches (`erpc', in parallel, each within `rpc_timeout_ms'), before the
%%% operation goes on to act: the state receipt of a step is on every reachable quorum member
%%% before the step's action starts. A new coordinator (always a node with quorum) reads its own
%%% ledger. Each node's copy is its own hash chain (its own seq and hashes); the receipts' details
%%% carry the operation id, so the copies are matched by content, not by seq.
-module(autonomic_loop_journal).

-export([write/2, write_local/2, encode/1, decode/1, operation_action/1, read/1, peers/0]).

-define(LOG, #{domain => [autonomic, loop]}).

%% @doc Appends a receipt here and on every other reachable node with quorum; `{ok, Receipt}' of
%% the local append (the copies' failures are logged: a copy is best effort, the local receipt is
%% not).
-spec write(binary(), map()) -> {ok, autonomic_ledger:receipt()} | {error, term()}.
write(Action, Detail) ->
    Bin = encode(Detail#{node => node(), at => erlang:system_time(millisecond)}),
    case autonomic_ledger:append(Action, Bin) of
        {ok, Receipt} ->
            replicate(Action, Bin),
            {ok, Receipt};
        {error, Why} = Error ->
            logger:error("loop: journal append ~s failed: ~p", [Action, Why], ?LOG),
            Error
    end.

%% @doc Appends a receipt on this node only (cycle timings: nothing a recovery needs).
-spec write_local(binary(), map()) -> {ok, autonomic_ledger:receipt()} | {error, term()}.
write_local(Action, Detail) ->
    autonomic_ledger:append(Action, encode(Detail#{node => node(), at => erlang:system_time(millisecond)})).

replicate(Action, Bin) ->
    case peers() of
        [] -> ok;
        Peers ->
            Timeout = application:get_env(autonomic_loop, rpc_timeout_ms, 5000),
            Results = erpc:multicall(Peers, autonomic_ledger, append, [Action, Bin], Timeout),
            [logger:warning("loop: journal copy of ~s on ~p failed: ~p", [Action, P, R], ?LOG)
             || {P, R} <- lists:zip(Peers, Results), not is_ok(R)],
            ok
    end.

is_ok({ok, {ok, _}}) -> true;
is_ok(_) -> false.

%% @doc The other nodes that get a copy: the quorum members this node reaches.
-spec peers() -> [node()].
peers() ->
    try quorum_manager:get_quorum_status() of
        #{members := Members, reachable := Reachable} ->
            [N || N <- Reachable, N =/= node(), lists:member(N, Members)]
    catch
        _:_ -> [N || N <- nodes()]
    end.

%% @doc The detail's bytes in a receipt.
-spec encode(map()) -> binary().
encode(Detail) ->
    term_to_binary(Detail, [deterministic, {minor_version, 2}]).

%% @doc A receipt's detail, `{error, not_a_loop_receipt}' when it cannot be decoded.
-spec decode(binary()) -> {ok, map()} | {error, not_a_loop_receipt}.
decode(Bin) when is_binary(Bin) ->
    %% Not `safe': a receipt written on another node names atoms of modules this node may not
    %% have loaded yet (the planner's, say), and `safe' would refuse it. The receipts come from
    %% this cluster's own nodes (the ledger's appenders, behind the distribution cookie).
    try binary_to_term(Bin) of
        M when is_map(M) -> {ok, M};
        _ -> {error, not_a_loop_receipt}
    catch
        _:_ -> {error, not_a_loop_receipt}
    end;
decode(_) ->
    {error, not_a_loop_receipt}.

%% @doc The receipt action of an operation entering `State'.
-spec operation_action(autonomic_loop_op:state()) -> binary().
operation_action(State) ->
    <<"loop.operation.", (atom_to_binary(State))/binary>>.

%% @doc The receipts of these actions on this node's ledger, decoded, in ledger order:
%% `[{Seq, Action, Detail}]'.
-spec read([binary()]) -> [{non_neg_integer(), binary(), map()}].
read(Actions) ->
    All = lists:append([case autonomic_ledger:by_action(A) of
                            {ok, Rs} -> [{Seq, A, D} || #{seq := Seq, result := R} <- Rs, {ok, D} <- [decode(R)]];
                            {error, _} -> []
                        end || A <- Actions]),
    lists:keysort(1, All).
