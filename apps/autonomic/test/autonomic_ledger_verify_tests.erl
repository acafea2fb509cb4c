%%% @doc EUnit tests of the pure Erlang verifier against the RFC 6962 test vectors used by
%%% Certificate Transparency and Trillian (github.com/transparency-dev/merkle,
%%% `testonly/constants.go' and `proof/verify_test.go') and the 7-leaf example of RFC 6962
%%% section 2.1.3, with the same corruptions those suites try; and malformed input, which must
%%% give an error, never an exception. No NIF is involved.
-module(autonomic_ledger_verify_tests).

-include_lib("eunit/include/eunit.hrl").

-import(autonomic_ledger_verify, [leaf_hash/1, node_hash/2]).

h(Hex) -> binary:decode_hex(Hex).

leaves() ->
    [<<>>, <<0>>, <<16#10>>, <<16#20, 16#21>>, <<16#30, 16#31>>, <<16#40, 16#41, 16#42, 16#43>>,
     list_to_binary(lists:seq(16#50, 16#57)), list_to_binary(lists:seq(16#60, 16#6f))].

%% Perfect subtree hashes of the 8-leaf tree: {Level, Index} => Hash.
nh({0, I}) -> lists:nth(I + 1, [
    h(<<"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d">>),
    h(<<"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7">>),
    h(<<"0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7">>),
    h(<<"07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7">>),
    h(<<"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b">>),
    h(<<"4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658">>),
    h(<<"b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f">>),
    h(<<"46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1">>)]);
nh({1, I}) -> lists:nth(I + 1, [
    h(<<"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125">>),
    h(<<"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e">>),
    h(<<"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a">>),
    h(<<"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0">>)]);
nh({2, I}) -> lists:nth(I + 1, [
    h(<<"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7">>),
    h(<<"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4">>)]).

%% Roots of the trees of sizes 1 to 8.
root(N) -> lists:nth(N, [
    h(<<"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d">>),
    h(<<"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125">>),
    h(<<"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77">>),
    h(<<"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7">>),
    h(<<"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4">>),
    h(<<"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef">>),
    h(<<"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c">>),
    h(<<"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328">>)]).

leaf_hashes_match_vectors_test() ->
    [?assertEqual(nh({0, I}), leaf_hash(D)) || {I, D} <- lists:zip(lists:seq(0, 7), leaves())],
    ?assertEqual(h(<<"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855">>),
                 autonomic_ledger_verify:empty_root()),
    ?assertEqual(nh({1, 0}), node_hash(nh({0, 0}), nh({0, 1}))).

%% {Index (0-based), Size, Path}
inclusion_vectors() ->
    [{0, 1, []},
     {0, 8, [nh({0, 1}), nh({1, 1}), nh({2, 1})]},
     {5, 8, [nh({0, 4}), nh({1, 3}), nh({2, 0})]},
     {2, 3, [nh({1, 0})]},
     {1, 5, [nh({0, 0}), nh({1, 1}), nh({0, 4})]}].

inclusion_vectors_verify_and_corruptions_fail_test() ->
    Some = h(<<"abacaba000000000000000000000000000000000000000000060061e00123456">>),
    lists:foreach(
        fun({I, Size, Path}) ->
            Leaf = lists:nth(I + 1, leaves()),
            Root = root(Size),
            ?assertEqual(ok, autonomic_ledger_verify:inclusion(Leaf, I, Size, Path, Root)),
            ?assertEqual({ok, Root}, autonomic_ledger_verify:root_from_inclusion(leaf_hash(Leaf), I, Size, Path)),
            Probes = [
                {I + 1, Size, Root, Leaf, Path},
                {I bxor 2, Size, Root, Leaf, Path},
                {I, Size * 2, Root, Leaf, Path},
                {I, Size div 2, Root, Leaf, Path},
                {I, Size, Root, <<"WrongLeaf">>, Path},
                {I, Size, autonomic_ledger_verify:empty_root(), Leaf, Path},
                {I, Size, Some, Leaf, Path},
                {I, Size, Root, Leaf, Path ++ [Root]},
                {I, Size, Root, Leaf, [Root | Path]}
            ] ++ [{I, Size, Root, Leaf, flip_nth(N, Path, 8)} || N <- lists:seq(1, length(Path))]
              ++ [{I, Size, Root, Leaf, lists:droplast(Path)} || Path =/= []]
              ++ [{I, Size, Root, Leaf, [hd(Path), Some | tl(Path)]} || length(Path) > 1]
              ++ [{I - 1, Size, Root, Leaf, Path} || I > 0],
            [?assertMatch({error, _}, autonomic_ledger_verify:inclusion(L, Ix, S, P, R))
             || {Ix, S, R, L, P} <- Probes]
        end,
        inclusion_vectors()).

%% {Old, New, Path}
consistency_vectors() ->
    [{1, 1, []},
     {1, 8, [nh({0, 1}), nh({1, 1}), nh({2, 1})]},
     {6, 8, [nh({1, 2}), nh({1, 3}), nh({2, 0})]},
     {2, 5, [nh({1, 1}), nh({0, 4})]},
     {6, 7, [nh({1, 2}), nh({0, 6}), nh({2, 0})]}].

consistency_vectors_verify_and_corruptions_fail_test() ->
    lists:foreach(
        fun({Old, New, Path}) ->
            R1 = root(Old), R2 = root(New),
            ?assertEqual(ok, autonomic_ledger_verify:consistency(Old, New, R1, R2, Path)),
            ?assertEqual(ok, autonomic_ledger_verify:consistency(
                                 #{old_size => Old, size => New, old_root => R1, root => R2, path => Path})),
            case Path of
                [] ->
                    ok;
                _ ->
                    Probes = [
                        {Old - 1, New, R1, R2, Path},
                        {Old + 1, New, R1, R2, Path},
                        {Old bxor 2, New, R1, R2, Path},
                        {Old, New * 2, R1, R2, Path},
                        {Old, New div 2, R1, R2, Path},
                        {Old, New, root(3), R2, Path},
                        {Old, New, R1, root(3), Path},
                        {Old, New, R2, R1, Path},
                        {Old, New, R1, R2, []},
                        {Old, New, R1, R2, Path ++ [R1]},
                        {Old, New, R1, R2, Path ++ [R2]},
                        {Old, New, R1, R2, [R1 | Path]},
                        {Old, New, R1, R2, [R2 | Path]},
                        {Old, New, R1, R2, [hd(Path) | Path]},
                        {Old, New, R1, R2, lists:droplast(Path)}
                    ] ++ [{Old, New, R1, R2, flip_nth(N, Path, 16)} || N <- lists:seq(1, length(Path))],
                    [?assertMatch({error, _}, autonomic_ledger_verify:consistency(O, N, A, B, P))
                     || {O, N, A, B, P} <- Probes, {O, N, A, B, P} =/= {Old, New, R1, R2, Path}]
            end
        end,
        consistency_vectors()).

%% RFC 6962 section 2.1.3: the 7-leaf tree, audit paths for d0, d3, d4, d6 and consistency
%% proofs from sizes 3, 4 and 6.
rfc6962_seven_leaf_example_test() ->
    [A, B, C, D, E, F, J] = [nh({0, I}) || I <- lists:seq(0, 6)],
    G = node_hash(A, B), Hh = node_hash(C, D), I = node_hash(E, F),
    ?assertEqual({nh({1, 0}), nh({1, 1}), nh({1, 2})}, {G, Hh, I}),
    K = node_hash(G, Hh), L = node_hash(I, J),
    Root = node_hash(K, L),
    ?assertEqual(root(7), Root),
    Leaves = leaves(),
    [?assertEqual(ok, autonomic_ledger_verify:inclusion(lists:nth(Ix + 1, Leaves), Ix, 7, Path, Root))
     || {Ix, Path} <- [{0, [B, Hh, L]}, {3, [C, G, L]}, {4, [F, J, K]}, {6, [I, K]}]],
    [?assertEqual(ok, autonomic_ledger_verify:consistency(Old, 7, root(Old), Root, Path))
     || {Old, Path} <- [{3, [C, D, G, L]}, {4, [L]}, {6, [I, J, K]}]].

degenerate_consistency_test() ->
    R1 = leaf_hash(<<"1">>), R2 = leaf_hash(<<"2">>),
    ?assertEqual(ok, autonomic_ledger_verify:consistency(0, 0, R1, R1, [])),
    ?assertEqual(ok, autonomic_ledger_verify:consistency(0, 5, R1, R2, [])),
    ?assertEqual(ok, autonomic_ledger_verify:consistency(3, 3, R2, R2, [])),
    ?assertEqual({error, root_mismatch}, autonomic_ledger_verify:consistency(3, 3, R1, R2, [])),
    ?assertEqual({error, wrong_path_length}, autonomic_ledger_verify:consistency(3, 3, R1, R1, [R1])),
    ?assertEqual({error, wrong_path_length}, autonomic_ledger_verify:consistency(0, 1, R1, R1, [R1])),
    ?assertEqual({error, {sizes_reversed, 2, 1}}, autonomic_ledger_verify:consistency(2, 1, R1, R2, [])),
    ?assertEqual({error, wrong_path_length}, autonomic_ledger_verify:consistency(1, 2, R1, R2, [])).

malformed_input_is_an_error_not_a_crash_test() ->
    R = leaf_hash(<<"x">>),
    Bad = [
        autonomic_ledger_verify:inclusion(<<"x">>, 0, 1, not_a_list, R),
        autonomic_ledger_verify:inclusion(<<"x">>, 0, 1, [<<"short">>], R),
        autonomic_ledger_verify:inclusion(<<"x">>, 0, 1, [], <<"short root">>),
        autonomic_ledger_verify:inclusion(<<"x">>, -1, 1, [], R),
        autonomic_ledger_verify:inclusion(<<"x">>, a, 1, [], R),
        autonomic_ledger_verify:inclusion(<<"x">>, 0, b, [], R),
        autonomic_ledger_verify:inclusion(x, 0, 1, [], R),
        autonomic_ledger_verify:inclusion(#{}, #{}),
        autonomic_ledger_verify:inclusion(#{seq => 0, hash => R}, #{}),
        autonomic_ledger_verify:inclusion(#{seq => 0, hash => R}, #{seq => 0, size => 1, root => R, path => []}),
        autonomic_ledger_verify:consistency(#{}),
        autonomic_ledger_verify:consistency(1, 2, R, R, [1]),
        autonomic_ledger_verify:consistency(1, 2, R, 42, [R]),
        autonomic_ledger_verify:consistency(x, 2, R, R, [R]),
        autonomic_ledger_verify:receipt_hash(#{}),
        autonomic_ledger_verify:receipt_hash((receipt())#{id := <<"not-an-id">>}),
        autonomic_ledger_verify:receipt_hash((receipt())#{id := <<"0190f0a1-b2c3-7000-8000-00000000000g">>}),
        autonomic_ledger_verify:receipt_hash((receipt())#{seq := -1}),
        autonomic_ledger_verify:receipt_hash((receipt())#{prev_hash := <<1, 2>>}),
        autonomic_ledger_verify:receipt_hash((receipt())#{action := action}),
        autonomic_ledger_verify:chain(not_a_list),
        autonomic_ledger_verify:chain([x])
    ],
    [?assertMatch({error, _}, B) || B <- Bad],
    ?assertEqual({error, {index_out_of_range, 1, 1}}, autonomic_ledger_verify:inclusion(<<"x">>, 1, 1, [], R)).

%% The canonical encoding, written out by hand: the same bytes the Rust side hashes.
receipt_hash_is_the_documented_encoding_test() ->
    Rc = receipt(),
    Expected = crypto:hash(sha256, <<5:64, 16#0190f0a1b2c370008000000000000001:128, 16#ab:8, 0:248,
                                     -2:64/signed, 7:32, "restart", 2:32, "ok">>),
    ?assertEqual({ok, Expected}, autonomic_ledger_verify:receipt_hash(Rc)),
    ?assertEqual({ok, Expected},
                 autonomic_ledger_verify:receipt_hash(Rc#{id := <<"0190F0A1-B2C3-7000-8000-000000000001">>})),
    {ok, Swapped} = autonomic_ledger_verify:receipt_hash(Rc#{action := <<"restarto">>, result := <<"k">>}),
    ?assertNotEqual(Expected, Swapped).

receipt() ->
    #{seq => 5, id => <<"0190f0a1-b2c3-7000-8000-000000000001">>, prev_hash => <<16#ab, 0:248>>,
      timestamp => -2, action => <<"restart">>, result => <<"ok">>, hash => <<0:256>>}.

flip_nth(N, Path, Bit) ->
    {Before, [<<B, Rest/binary>> | After]} = lists:split(N - 1, Path),
    Before ++ [<<(B bxor Bit), Rest/binary>> | After].
