%%% @doc A small deterministic JSON encoder for escalation webhooks (OTP 25 has no `json' module,
%%% and no dependency may come from hex.pm here).
%%%
%%% Maps become objects with their keys sorted; lists become arrays; binaries that are UTF-8
%%% become strings (others are base64 text); `true', `false' and `null' are literals, other atoms
%%% strings; integers and floats numbers (floats in their shortest exact form; infinities do not
%%% exist in Erlang). Any other term (pids, references, tuples) is written as a string of its
%%% Erlang text form, so an escalation never fails to encode.
-module(autonomic_json).

-export([encode/1]).

%% @doc Encodes `Term' as JSON text.
-spec encode(term()) -> binary().
encode(Term) ->
    iolist_to_binary(value(Term)).

value(true) -> <<"true">>;
value(false) -> <<"false">>;
value(null) -> <<"null">>;
value(A) when is_atom(A) -> string(atom_to_binary(A, utf8));
value(I) when is_integer(I) -> integer_to_binary(I);
value(F) when is_float(F) -> float_to_binary(F, [short]);
value(B) when is_binary(B) ->
    case unicode:characters_to_binary(B) of
        B -> string(B);
        _ -> string(base64:encode(B))
    end;
value(M) when is_map(M) ->
    Pairs = lists:sort([{key(K), V} || {K, V} <- maps:to_list(M)]),
    ["{", lists:join(",", [[string(K), ":", value(V)] || {K, V} <- Pairs]), "}"];
value(L) when is_list(L) ->
    case is_proper(L) of
        true -> ["[", lists:join(",", [value(V) || V <- L]), "]"];
        false -> text(L)
    end;
value(Other) ->
    text(Other).

key(K) when is_binary(K) ->
    case unicode:characters_to_binary(K) of
        K -> K;
        _ -> base64:encode(K)
    end;
key(K) when is_atom(K) -> atom_to_binary(K, utf8);
key(K) when is_integer(K) -> integer_to_binary(K);
key(K) -> iolist_to_binary(io_lib:format("~0tp", [K])).

text(T) ->
    string(unicode:characters_to_binary(io_lib:format("~0tp", [T]))).

is_proper([]) -> true;
is_proper([_ | T]) -> is_proper(T);
is_proper(_) -> false.

string(B) ->
    [$", escape(B, <<>>), $"].

escape(<<>>, Acc) -> Acc;
escape(<<$", R/binary>>, Acc) -> escape(R, <<Acc/binary, "\\\"">>);
escape(<<$\\, R/binary>>, Acc) -> escape(R, <<Acc/binary, "\\\\">>);
escape(<<$\n, R/binary>>, Acc) -> escape(R, <<Acc/binary, "\\n">>);
escape(<<$\r, R/binary>>, Acc) -> escape(R, <<Acc/binary, "\\r">>);
escape(<<$\t, R/binary>>, Acc) -> escape(R, <<Acc/binary, "\\t">>);
escape(<<C, R/binary>>, Acc) when C < 16#20 ->
    escape(R, <<Acc/binary, (iolist_to_binary(io_lib:format("\\u~4.16.0b", [C])))/binary>>);
escape(<<C, R/binary>>, Acc) -> escape(R, <<Acc/binary, C>>).
