%%% @doc The auditor's side of the ledger, in pure Erlang (only `crypto:hash/2'): recomputes a
%%% receipt's hash and checks RFC 6962 inclusion and consistency proofs, so that someone who does
%%% not trust the node (or has no NIF) can check what the ledger claims.
%%%
%%% The algorithms are those of RFC 9162 sections 2.1.3.2 and 2.1.4.2 (which state RFC 6962's
%%% checks step by step): leaves are `SHA-256(0x00 || ReceiptHash)', nodes
%%% `SHA-256(0x01 || Left || Right)'.
%%%
%%% ```
%%% {ok, R} = autonomic_ledger:append(<<"failover">>, <<"db -> replica-2">>),
%%% {ok, P} = autonomic_ledger:inclusion_proof(maps:get(seq, R)),
%%% ok = autonomic_ledger_verify:inclusion(R, P),
%%% {OldSize, OldRoot} = KeptEarlier,
%%% {ok, C = #{old_root := OldRoot}} = autonomic_ledger:consistency_proof(OldSize),
%%% ok = autonomic_ledger_verify:consistency(C).
%%% '''
%%%
%%% Nothing here trusts its input: a malformed proof or receipt is `{error, {malformed, What}}',
%%% never an exception.
-module(autonomic_ledger_verify).

-export([receipt_hash/1, leaf_hash/1, node_hash/2, empty_root/0]).
-export([inclusion/2, inclusion/5, root_from_inclusion/4]).
-export([consistency/1, consistency/5]).
-export([chain/1]).

-define(ZERO, <<0:256>>).

-type hash() :: <<_:256>>.
-type reason() ::
    {malformed, atom()}
    | seq_mismatch
    | hash_mismatch
    | root_mismatch
    | wrong_path_length
    | {index_out_of_range, non_neg_integer(), non_neg_integer()}
    | {sizes_reversed, non_neg_integer(), non_neg_integer()}.

-export_type([reason/0]).

%%% Hashes

%% @doc The hash of a receipt: SHA-256 over the canonical encoding of its fields, all integers
%% big-endian: `seq' (64 bits), `id' (the 16 bytes of the UUID), `prev_hash' (32 bytes),
%% `timestamp' (signed 64 bits, microseconds), then `action' and `result', each preceded by its
%% length in bytes (32 bits).
-spec receipt_hash(map()) -> {ok, hash()} | {error, reason()}.
receipt_hash(#{seq := Seq, id := Id, prev_hash := <<_:256>> = Prev, timestamp := Ts,
               action := Action, result := Result})
  when is_integer(Seq), Seq >= 0, Seq < 1 bsl 64, is_integer(Ts), Ts >= -(1 bsl 63), Ts < 1 bsl 63,
       is_binary(Action), is_binary(Result) ->
    case id_bytes(Id) of
        {ok, IdBytes} ->
            {ok, crypto:hash(sha256, [<<Seq:64>>, IdBytes, Prev, <<Ts:64/signed>>,
                                      <<(byte_size(Action)):32>>, Action,
                                      <<(byte_size(Result)):32>>, Result])};
        error ->
            {error, {malformed, id}}
    end;
receipt_hash(_) ->
    {error, {malformed, receipt}}.

%% @doc `SHA-256(0x00 || Data)'.
-spec leaf_hash(binary()) -> hash().
leaf_hash(Data) ->
    crypto:hash(sha256, [<<0>>, Data]).

%% @doc `SHA-256(0x01 || Left || Right)'.
-spec node_hash(hash(), hash()) -> hash().
node_hash(Left, Right) ->
    crypto:hash(sha256, [<<1>>, Left, Right]).

%% @doc The root of the empty tree, `SHA-256()'.
-spec empty_root() -> hash().
empty_root() ->
    crypto:hash(sha256, <<>>).

%%% Inclusion

%% @doc Checks that `Receipt' is receipt `seq' of the ledger whose root at `size' receipts is
%% `root': recomputes the receipt's hash from its fields (it must equal the receipt's `hash'),
%% then the root from the audit path.
-spec inclusion(map(), map()) -> ok | {error, reason()}.
inclusion(#{seq := Seq, hash := Hash} = Receipt, #{seq := PSeq, size := Size, root := Root, path := Path}) ->
    case receipt_hash(Receipt) of
        {ok, Hash} when Seq =:= PSeq -> inclusion(Hash, Seq, Size, Path, Root);
        {ok, Hash} -> {error, seq_mismatch};
        {ok, _Other} -> {error, hash_mismatch};
        {error, _} = Error -> Error
    end;
inclusion(#{seq := _, hash := _}, _Proof) ->
    {error, {malformed, proof}};
inclusion(_Receipt, _Proof) ->
    {error, {malformed, receipt}}.

%% @doc Checks that the leaf whose input is `LeafData' (for a receipt: its hash) is leaf `Index'
%% of the tree of `Size' leaves with root `Root'.
-spec inclusion(binary(), non_neg_integer(), pos_integer(), [hash()], hash()) -> ok | {error, reason()}.
inclusion(LeafData, Index, Size, Path, Root) when is_binary(LeafData) ->
    case root_from_inclusion(leaf_hash(LeafData), Index, Size, Path) of
        {ok, Root} -> ok;
        {ok, _} -> {error, root_mismatch};
        {error, _} = Error -> Error
    end;
inclusion(_, _, _, _, _) ->
    {error, {malformed, leaf}}.

%% @doc The root an audit path leads to from leaf hash `LeafHash' at `Index' in a tree of
%% `Size' leaves (RFC 9162 section 2.1.3.2).
-spec root_from_inclusion(hash(), non_neg_integer(), pos_integer(), [hash()]) -> {ok, hash()} | {error, reason()}.
root_from_inclusion(LeafHash, Index, Size, Path) ->
    case check_path(Path) andalso is_hash(LeafHash) of
        false ->
            {error, {malformed, path}};
        true when not (is_integer(Index) andalso is_integer(Size) andalso Index >= 0) ->
            {error, {malformed, index}};
        true when Index >= Size ->
            {error, {index_out_of_range, Index, Size}};
        true ->
            inclusion_walk(Path, Index, Size - 1, LeafHash)
    end.

inclusion_walk([], _Fn, 0, R) ->
    {ok, R};
inclusion_walk([], _Fn, _Sn, _R) ->
    {error, wrong_path_length};
inclusion_walk([_ | _], _Fn, 0, _R) ->
    {error, wrong_path_length};
inclusion_walk([P | Rest], Fn, Sn, R) when Fn band 1 =:= 1; Fn =:= Sn ->
    {Fn1, Sn1} = shift_until_odd(Fn, Sn),
    inclusion_walk(Rest, Fn1 bsr 1, Sn1 bsr 1, node_hash(P, R));
inclusion_walk([P | Rest], Fn, Sn, R) ->
    inclusion_walk(Rest, Fn bsr 1, Sn bsr 1, node_hash(R, P)).

%% While LSB(Fn) is not set and Fn is not 0, shift both right (the right edge of the tree,
%% where a node has no right sibling).
shift_until_odd(Fn, Sn) when Fn band 1 =:= 0, Fn =/= 0 -> shift_until_odd(Fn bsr 1, Sn bsr 1);
shift_until_odd(Fn, Sn) -> {Fn, Sn}.

%%% Consistency

%% @doc Checks a consistency proof as returned by `autonomic_ledger:consistency_proof/2'. The
%% caller must also check that `old_root' is the root it trusts for `old_size'.
-spec consistency(map()) -> ok | {error, reason()}.
consistency(#{old_size := Old, size := New, old_root := OldRoot, root := Root, path := Path}) ->
    consistency(Old, New, OldRoot, Root, Path);
consistency(_) ->
    {error, {malformed, proof}}.

%% @doc Checks that the tree of `Old' leaves with root `OldRoot' is a prefix of the tree of `New'
%% leaves with root `NewRoot' (RFC 9162 section 2.1.4.2; equal sizes need an empty path and
%% equal roots; the empty tree is a prefix of every tree).
-spec consistency(non_neg_integer(), non_neg_integer(), hash(), hash(), [hash()]) -> ok | {error, reason()}.
consistency(Old, New, OldRoot, NewRoot, Path) ->
    case check_path(Path) andalso is_hash(OldRoot) andalso is_hash(NewRoot) of
        false ->
            {error, {malformed, path}};
        true when not (is_integer(Old) andalso is_integer(New) andalso Old >= 0) ->
            {error, {malformed, size}};
        true when Old > New ->
            {error, {sizes_reversed, Old, New}};
        true when Old =:= New ->
            case {Path, OldRoot =:= NewRoot} of
                {[], true} -> ok;
                {[], false} -> {error, root_mismatch};
                _ -> {error, wrong_path_length}
            end;
        true when Old =:= 0 ->
            case Path of
                [] -> ok;
                _ -> {error, wrong_path_length}
            end;
        true when Path =:= [] ->
            {error, wrong_path_length};
        true ->
            %% When the old tree is a perfect subtree of the new one, its root is the path's
            %% implicit first element.
            [First | Rest] = case is_power_of_two(Old) of
                true -> [OldRoot | Path];
                false -> Path
            end,
            {Fn, Sn} = shift_while_odd(Old - 1, New - 1),
            case consistency_walk(Rest, Fn, Sn, First, First) of
                {ok, OldRoot, NewRoot} -> ok;
                {ok, _, _} -> {error, root_mismatch};
                {error, _} = Error -> Error
            end
    end.

consistency_walk([], _Fn, 0, Fr, Sr) ->
    {ok, Fr, Sr};
consistency_walk([], _Fn, _Sn, _Fr, _Sr) ->
    {error, wrong_path_length};
consistency_walk([_ | _], _Fn, 0, _Fr, _Sr) ->
    {error, wrong_path_length};
consistency_walk([C | Rest], Fn, Sn, Fr, Sr) when Fn band 1 =:= 1; Fn =:= Sn ->
    {Fn1, Sn1} = shift_until_odd(Fn, Sn),
    consistency_walk(Rest, Fn1 bsr 1, Sn1 bsr 1, node_hash(C, Fr), node_hash(C, Sr));
consistency_walk([C | Rest], Fn, Sn, Fr, Sr) ->
    consistency_walk(Rest, Fn bsr 1, Sn bsr 1, Fr, node_hash(Sr, C)).

shift_while_odd(Fn, Sn) when Fn band 1 =:= 1 -> shift_while_odd(Fn bsr 1, Sn bsr 1);
shift_while_odd(Fn, Sn) -> {Fn, Sn}.

%%% Chain

%% @doc Checks a run of consecutive receipts (as `autonomic_ledger:tail/2' returns them): each
%% hash is the hash of its fields, each `seq' follows the previous one, each `prev_hash' is the
%% previous receipt's hash, and receipt 0's `prev_hash' is zero. Names the first that fails.
-spec chain([map()]) -> ok | {error, {chain_broken, non_neg_integer()} | reason()}.
chain(Receipts) when is_list(Receipts) ->
    chain(Receipts, undefined);
chain(_) ->
    {error, {malformed, receipts}}.

chain([], _Prev) ->
    ok;
chain([#{seq := Seq, hash := Hash, prev_hash := PrevHash} = R | Rest], Prev) ->
    Linked = case Prev of
        undefined when Seq =:= 0 -> PrevHash =:= ?ZERO;
        undefined -> true;
        {PSeq, PHash} -> Seq =:= PSeq + 1 andalso PrevHash =:= PHash
    end,
    case Linked andalso receipt_hash(R) of
        {ok, Hash} -> chain(Rest, {Seq, Hash});
        {error, {malformed, _}} = Error -> Error;
        _ -> {error, {chain_broken, Seq}}
    end;
chain([_ | _], _Prev) ->
    {error, {malformed, receipt}}.

%%% Helpers

id_bytes(Id) when is_binary(Id), byte_size(Id) =:= 36 ->
    case Id of
        <<A:8/binary, $-, B:4/binary, $-, C:4/binary, $-, D:4/binary, $-, E:12/binary>> ->
            try {ok, binary:decode_hex(<<A/binary, B/binary, C/binary, D/binary, E/binary>>)}
            catch error:badarg -> error
            end;
        _ ->
            error
    end;
id_bytes(_) ->
    error.

is_hash(<<_:256>>) -> true;
is_hash(_) -> false.

check_path(Path) when is_list(Path) -> lists:all(fun is_hash/1, Path);
check_path(_) -> false.

is_power_of_two(N) -> N > 0 andalso N band (N - 1) =:= 0.
