%%% @doc How the actuator's receipts are written to the ledger, and read back.
%%%
%%% A receipt is one ledger record ({@link autonomic_ledger:append/2}): its `action' is the text
%%% `<<"execute.", Kind/binary>>' (`execute.throttle', `execute.pause', `execute.shed',
%%% `execute.degrade', `execute.failover', `execute.restart', `execute.rollback'), so that
%%% `autonomic_ledger:by_action/1' finds every receipt of a kind; its `result' is the detail
%%% map in the Erlang external term format, written with `term_to_binary(Detail,
%%% [deterministic, {minor_version, 2}])'.
%%%
%%% Why the external term format: the detail holds Erlang terms that must come back exactly for
%%% a rollback (a backend's target may be any term, a child id too, pids name the processes a
%%% restart replaced), which a text format would have to invent an encoding for. The ledger's
%%% hash covers the stored bytes, so verification never re-encodes; `deterministic' makes equal
%%% details equal bytes on a given OTP release, and any release decodes them
%%% (`binary_to_term/1'; the ledger is hash-chained, so its records are trusted input). Every
%%% detail carries `v => 1'.
-module(autonomic_receipt).

-export([encode/1, decode/1, action/1, kind/1, kinds/0]).

-define(PREFIX, "execute.").
-define(VERSION, 1).

%% @doc The bytes stored as a receipt's `result'.
-spec encode(map()) -> binary().
encode(Detail) ->
    term_to_binary(Detail#{v => ?VERSION}, [deterministic, {minor_version, 2}]).

%% @doc The detail map of a receipt's `result', or `{error, not_a_receipt}'.
-spec decode(binary()) -> {ok, map()} | {error, not_a_receipt}.
decode(Bin) when is_binary(Bin) ->
    try binary_to_term(Bin) of
        #{v := ?VERSION} = Detail -> {ok, Detail};
        _ -> {error, not_a_receipt}
    catch
        error:badarg -> {error, not_a_receipt}
    end;
decode(_) ->
    {error, not_a_receipt}.

%% @doc The ledger action text of a kind.
-spec action(atom()) -> binary().
action(Kind) ->
    <<?PREFIX, (atom_to_binary(Kind))/binary>>.

%% @doc The kind of a ledger action text, or `undefined' for actions not written here.
-spec kind(binary()) -> atom() | undefined.
kind(<<?PREFIX, Rest/binary>>) ->
    case [K || K <- kinds(), atom_to_binary(K) =:= Rest] of
        [K] -> K;
        [] -> undefined
    end;
kind(_) ->
    undefined.

%% @doc Every kind of receipt.
-spec kinds() -> [atom()].
kinds() ->
    [throttle, pause, shed, degrade, failover, restart, rollback].
