%%% @doc EUnit tests of the ledger API (`autonomic_ledger') through the real NIF and real files:
%%% appending and reading, reopening, the owner's lifetime, concurrent appenders, proofs checked
%%% by the pure Erlang verifier (and refused for a changed receipt), tamper detection by verify,
%%% and every kind of bad input, each of which must leave the ledger unchanged.
%%%
%%% Every test opens its own ledger in a fresh directory, from the test's own process (the owner).
-module(autonomic_ledger_tests).

-include_lib("eunit/include/eunit.hrl").
-include_lib("kernel/include/file.hrl").

-define(MIB, 1048576).

ledger_test_() ->
    {foreach, fun mkdir/0, fun rmdir/1, [
        fun append_and_read_back/1,
        fun reopen_keeps_everything/1,
        fun proofs_verify_in_pure_erlang/1,
        fun changed_receipt_fails_its_proof/1,
        fun verify_names_a_changed_record/1,
        fun torn_tail_is_cut_on_reopen/1,
        fun concurrent_appenders_share_fsyncs/1,
        fun always_fsyncs_each_record/1,
        fun owner_exit_closes_the_ledger/1,
        fun close_while_appending_answers_everyone/1,
        fun owner_death_while_appending_answers_everyone/1,
        fun second_open_is_refused/1,
        fun bad_open_arguments/1,
        fun bad_append_arguments/1,
        fun bad_read_arguments/1,
        fun unknown_and_closed_handles/1
    ]}.

mkdir() ->
    Base = filename:join(os:getenv("TMPDIR", "/tmp"),
                         "autonomic_ledger_tests_" ++ integer_to_list(erlang:unique_integer([positive]))),
    ok = filelib:ensure_path(Base),
    Base.

rmdir(Dir) ->
    %% A test that failed half way may leave its ledger open: close what it left.
    [autonomic_ledger:close(L) || {Name, L} <- autonomic_ledger:list(),
                                  lists:prefix("t_", atom_to_list(Name))],
    ok = file:del_dir_r(Dir).

name() ->
    list_to_atom("t_" ++ integer_to_list(erlang:unique_integer([positive]))).

open(Dir) ->
    open(Dir, #{}).

open(Dir, Opts) ->
    {ok, L} = autonomic_ledger:open(name(), Opts#{dir => filename:join(Dir, "ledger")}),
    L.

append_n(L, N) ->
    [begin
         {ok, R} = autonomic_ledger:append(L, <<"act-", (integer_to_binary(I rem 3))/binary>>,
                                           <<"result ", (integer_to_binary(I))/binary>>),
         R
     end || I <- lists:seq(1, N)].

segment(Dir) ->
    [Seg] = filelib:wildcard(filename:join([Dir, "ledger", "*.seg"])),
    Seg.

flip(File, Offset) ->
    {ok, Fd} = file:open(File, [read, write, raw, binary]),
    {ok, <<B>>} = file:pread(Fd, Offset, 1),
    ok = file:pwrite(Fd, Offset, <<(B bxor 1)>>),
    ok = file:close(Fd).

%%% Tests

append_and_read_back(Dir) ->
    ?_test(begin
        L = open(Dir),
        ?assertEqual(0, autonomic_ledger:size(L)),
        ?assertEqual({0, autonomic_ledger_verify:empty_root()}, autonomic_ledger:root(L)),
        T0 = erlang:system_time(microsecond),
        {ok, R0} = autonomic_ledger:append(L, <<"restart_child">>, <<"db_pool ok">>),
        {ok, R1} = autonomic_ledger:append(L, <<"failover">>, <<>>),
        T1 = erlang:system_time(microsecond),
        ?assertMatch(#{seq := 0, action := <<"restart_child">>, result := <<"db_pool ok">>,
                       prev_hash := <<0:256>>}, R0),
        ?assertMatch(#{seq := 1, action := <<"failover">>, result := <<>>}, R1),
        ?assertEqual(maps:get(hash, R0), maps:get(prev_hash, R1)),
        ?assertEqual({ok, maps:get(hash, R0)}, autonomic_ledger_verify:receipt_hash(R0)),
        ?assert(maps:get(timestamp, R0) >= T0 andalso maps:get(timestamp, R1) =< T1),
        #{id := Id0} = R0,
        ?assertMatch(<<_:8/binary, $-, _:4/binary, $-, $7, _:3/binary, $-, _:4/binary, $-, _:12/binary>>, Id0),
        ?assert(maps:get(id, R1) > Id0),
        ?assertEqual({ok, R0}, autonomic_ledger:get(L, Id0)),
        ?assertEqual({ok, R1}, autonomic_ledger:get(L, string:uppercase(maps:get(id, R1)))),
        ?assertEqual({ok, [R0, R1]}, autonomic_ledger:tail(L, 10)),
        ?assertEqual({ok, [R1]}, autonomic_ledger:tail(L, 1)),
        ?assertEqual({ok, []}, autonomic_ledger:tail(L, 0)),
        ?assertEqual({ok, [R1]}, autonomic_ledger:by_action(L, <<"failover">>)),
        ?assertEqual({ok, []}, autonomic_ledger:by_action(L, <<"none">>)),
        ?assertEqual(2, autonomic_ledger:size(L)),
        ?assertMatch({2, <<_:256>>}, autonomic_ledger:root(L)),
        ?assertEqual(ok, autonomic_ledger:verify(L)),
        {ok, Info} = autonomic_ledger:info(L),
        ?assertMatch(#{size := 2, appends := 2, fsyncs := 2, fsync := {group_commit, 0}}, Info),
        ?assertEqual(ok, autonomic_ledger:close(L))
    end).

reopen_keeps_everything(Dir) ->
    ?_test(begin
        L = open(Dir),
        Rs = append_n(L, 30),
        Root = autonomic_ledger:root(L),
        ok = autonomic_ledger:close(L),
        L2 = open(Dir, #{fsync => always}),
        ?assertEqual(Root, autonomic_ledger:root(L2)),
        ?assertEqual({ok, Rs}, autonomic_ledger:tail(L2, 30)),
        {ok, Next} = autonomic_ledger:append(L2, <<"after">>, <<"reopen">>),
        ?assertMatch(#{seq := 30}, Next),
        ?assertEqual(maps:get(hash, lists:last(Rs)), maps:get(prev_hash, Next)),
        ?assertEqual(ok, autonomic_ledger:verify(L2)),
        ok = autonomic_ledger:close(L2)
    end).

%% The issue's Erlang-side proof test: proofs made by the NIF check out with the pure Erlang
%% verifier, for every receipt and every earlier size.
proofs_verify_in_pure_erlang(Dir) ->
    ?_test(begin
        L = open(Dir),
        Roots = [begin _ = append_n(L, 3), autonomic_ledger:root(L) end || _ <- lists:seq(1, 13)],
        {Size, Root} = autonomic_ledger:root(L),
        ?assertEqual(39, Size),
        {ok, Rs} = autonomic_ledger:tail(L, Size),
        ?assertEqual(ok, autonomic_ledger_verify:chain(Rs)),
        lists:foreach(
            fun(#{seq := Seq} = R) ->
                {ok, P} = autonomic_ledger:inclusion_proof(L, Seq),
                ?assertMatch(#{seq := Seq, size := Size, root := Root}, P),
                ?assertEqual(ok, autonomic_ledger_verify:inclusion(R, P))
            end,
            Rs),
        lists:foreach(
            fun({OldSize, OldRoot}) ->
                {ok, C} = autonomic_ledger:consistency_proof(L, OldSize),
                ?assertMatch(#{old_size := OldSize, old_root := OldRoot, size := Size, root := Root}, C),
                ?assertEqual(ok, autonomic_ledger_verify:consistency(C))
            end,
            Roots),
        ok = autonomic_ledger:close(L)
    end).

%% ... and a proof for a changed receipt does not.
changed_receipt_fails_its_proof(Dir) ->
    ?_test(begin
        L = open(Dir),
        Rs = append_n(L, 11),
        R = lists:nth(6, Rs),
        {ok, P} = autonomic_ledger:inclusion_proof(L, maps:get(seq, R)),
        ?assertEqual(ok, autonomic_ledger_verify:inclusion(R, P)),
        Changes = [
            R#{result := <<"something else">>},
            R#{action := <<"act-9">>},
            R#{timestamp := maps:get(timestamp, R) + 1},
            R#{prev_hash := <<1:256>>},
            R#{id := maps:get(id, lists:nth(7, Rs))}
        ],
        %% With the stored hash kept, the fields no longer match it.
        [?assertEqual({error, hash_mismatch}, autonomic_ledger_verify:inclusion(C, P)) || C <- Changes],
        %% With a hash recomputed to match the change, the proof leads to another root.
        [begin
             {ok, H} = autonomic_ledger_verify:receipt_hash(C),
             ?assertEqual({error, root_mismatch}, autonomic_ledger_verify:inclusion(C#{hash := H}, P))
         end || C <- Changes],
        ?assertEqual({error, seq_mismatch}, autonomic_ledger_verify:inclusion(R, P#{seq := 4})),
        {ok, P7} = autonomic_ledger:inclusion_proof(L, 7),
        ?assertEqual({error, root_mismatch}, autonomic_ledger_verify:inclusion(lists:nth(8, Rs), P7#{root := <<0:256>>})),
        ?assertEqual({error, {chain_broken, 5}},
                     autonomic_ledger_verify:chain(lists:sublist(Rs, 5) ++ [hd(Changes)] ++ lists:nthtail(6, Rs))),
        {ok, C} = autonomic_ledger:consistency_proof(L, 5),
        [Hd | Tl] = maps:get(path, C),
        <<B, Rest/binary>> = Hd,
        ?assertEqual({error, root_mismatch},
                     autonomic_ledger_verify:consistency(C#{path := [<<(B bxor 1), Rest/binary>> | Tl]})),
        ?assertEqual({error, root_mismatch}, autonomic_ledger_verify:consistency(C#{old_root := <<0:256>>})),
        ok = autonomic_ledger:close(L)
    end).

verify_names_a_changed_record(Dir) ->
    ?_test(begin
        L = open(Dir),
        R5 = lists:nth(6, append_n(L, 8)),
        ?assertEqual(5, maps:get(seq, R5)),
        Seg = segment(Dir),
        {ok, Bin} = file:read_file(Seg),
        {Pos, _} = binary:match(Bin, maps:get(result, R5)),
        flip(Seg, Pos),
        ?assertEqual({error, {chain_broken, 5}}, autonomic_ledger:verify(L)),
        flip(Seg, Pos),
        ?assertEqual(ok, autonomic_ledger:verify(L)),
        ok = autonomic_ledger:close(L),
        %% Changed while closed: open accepts the record, verify names it.
        flip(Seg, Pos),
        L2 = open(Dir),
        ?assertEqual(8, autonomic_ledger:size(L2)),
        ?assertEqual({error, {chain_broken, 5}}, autonomic_ledger:verify(L2)),
        ok = autonomic_ledger:close(L2)
    end).

torn_tail_is_cut_on_reopen(Dir) ->
    ?_test(begin
        L = open(Dir),
        Rs = append_n(L, 5),
        ok = autonomic_ledger:close(L),
        Seg = segment(Dir),
        {ok, #file_info{size = Size}} = file:read_file_info(Seg),
        %% Cut the last record short, as a crash in the middle of its write would.
        {ok, Fd} = file:open(Seg, [read, write, raw]),
        {ok, _} = file:position(Fd, Size - 7),
        ok = file:truncate(Fd),
        ok = file:close(Fd),
        L2 = open(Dir),
        ?assertEqual(4, autonomic_ledger:size(L2)),
        ?assertEqual({ok, lists:sublist(Rs, 4)}, autonomic_ledger:tail(L2, 10)),
        ?assertEqual(ok, autonomic_ledger:verify(L2)),
        {ok, R} = autonomic_ledger:append(L2, <<"next">>, <<>>),
        ?assertMatch(#{seq := 4}, R),
        ?assertEqual(maps:get(hash, lists:nth(4, Rs)), maps:get(prev_hash, R)),
        ok = autonomic_ledger:close(L2)
    end).

concurrent_appenders_share_fsyncs(Dir) ->
    {timeout, 60, ?_test(begin
        L = open(Dir, #{fsync => {group_commit, 1}}),
        Self = self(),
        N = 200, Each = 20,
        [spawn_link(fun() ->
             Seqs = [begin
                         {ok, #{seq := S}} = autonomic_ledger:append(L, <<"p">>, integer_to_binary(P)),
                         S
                     end || _ <- lists:seq(1, Each)],
             Self ! {done, Seqs}
         end) || P <- lists:seq(1, N)],
        All = lists:append([receive {done, S} -> S end || _ <- lists:seq(1, N)]),
        ?assertEqual(lists:seq(0, N * Each - 1), lists:sort(All)),
        {ok, #{fsyncs := Fsyncs, appends := Appends}} = autonomic_ledger:info(L),
        ?assertEqual(N * Each, Appends),
        ?assert(Fsyncs < Appends div 4),
        ?assertEqual(ok, autonomic_ledger:verify(L)),
        ok = autonomic_ledger:close(L)
    end)}.

always_fsyncs_each_record(Dir) ->
    ?_test(begin
        L = open(Dir, #{fsync => always}),
        Self = self(),
        [spawn_link(fun() -> Self ! {done, append_n(L, 5)} end) || _ <- lists:seq(1, 4)],
        [receive {done, _} -> ok end || _ <- lists:seq(1, 4)],
        {ok, #{fsyncs := 20, appends := 20, fsync := always, batches := [{<<"1">>, 20} | _]}} =
            autonomic_ledger:info(L),
        ok = autonomic_ledger:close(L)
    end).

owner_exit_closes_the_ledger(Dir) ->
    ?_test(begin
        Self = self(),
        Name = name(),
        LDir = filename:join(Dir, "ledger"),
        Owner = spawn(fun() ->
            {ok, L} = autonomic_ledger:open(Name, #{dir => LDir}),
            Self ! {opened, L},
            receive stop -> ok end
        end),
        L = receive {opened, H} -> H end,
        {ok, _} = autonomic_ledger:append(Name, <<"by">>, <<"name">>),
        {ok, _} = autonomic_ledger:append(L, <<"by">>, <<"handle">>),
        Ref = monitor(process, Owner),
        Owner ! stop,
        receive {'DOWN', Ref, process, Owner, _} -> ok end,
        %% The close happens in the background; a new open of the directory waits for it.
        {ok, L2} = autonomic_ledger:open(Name, #{dir => LDir}),
        ?assertEqual(2, autonomic_ledger:size(L2)),
        ?assertEqual({error, closed}, autonomic_ledger:append(L, <<"old">>, <<"handle">>)),
        ?assertEqual(2, autonomic_ledger:size(Name)),
        ok = autonomic_ledger:close(L2)
    end).

second_open_is_refused(Dir) ->
    ?_test(begin
        LDir = filename:join(Dir, "ledger"),
        Name = name(),
        {ok, L} = autonomic_ledger:open(Name, #{dir => LDir}),
        _ = append_n(L, 2),
        Abs = list_to_binary(LDir),
        ?assertEqual({error, {already_open, Abs}}, autonomic_ledger:open(name(), #{dir => LDir})),
        ?assertEqual({error, {already_open, Abs}},
                     autonomic_ledger:open(name(), #{dir => filename:join([Dir, "x", "..", "ledger"])})),
        ?assertEqual({error, {already_open, Abs}}, autonomic_ledger:open(name(), #{dir => Abs})),
        ?assertEqual({error, {name_in_use, Name}},
                     autonomic_ledger:open(Name, #{dir => filename:join(Dir, "other")})),
        ?assertEqual(2, autonomic_ledger:size(L)),
        ok = autonomic_ledger:close(L)
    end).

bad_open_arguments(Dir) ->
    ?_test(begin
        D = filename:join(Dir, "ledger"),
        ?assertEqual({error, {invalid_name, "x"}}, autonomic_ledger:open("x", #{dir => D})),
        ?assertEqual({error, {invalid_options, [{dir, D}]}}, autonomic_ledger:open(x, [{dir, D}])),
        ?assertEqual({error, {missing_option, dir}}, autonomic_ledger:open(x, #{})),
        ?assertEqual({error, {unknown_option, sync}}, autonomic_ledger:open(x, #{dir => D, sync => always})),
        ?assertEqual({error, {invalid_dir, 42}}, autonomic_ledger:open(x, #{dir => 42})),
        [?assertEqual({error, {invalid_dir, Bad}}, autonomic_ledger:open(x, #{dir => Bad}))
         || Bad <- [[a | b], [<<"a">>, "b"], [], <<>>, ledger, "a\0b", [-1]]],
        [?assertEqual({error, {invalid_fsync, F}}, autonomic_ledger:open(x, #{dir => D, fsync => F}))
         || F <- [never, {group_commit, -1}, {group_commit, 60001}, {group_commit, 1.5}, {always, 1}, "always"]],
        %% A file where the directory should be.
        File = filename:join(Dir, "file"),
        ok = file:write_file(File, <<>>),
        ?assertMatch({error, {io_error, create, _, eexist}}, autonomic_ledger:open(x, #{dir => File})),
        %% Nothing was opened or registered by any of these.
        ?assertEqual([], [N || {N, _} <- autonomic_ledger:list(), N =:= x])
    end).

bad_append_arguments(Dir) ->
    ?_test(begin
        L = open(Dir),
        [R0] = append_n(L, 1),
        Root = autonomic_ledger:root(L),
        Bad = [
            {{not_binary, action}, foo, <<>>},
            {{not_binary, action}, "restart", <<>>},
            {{not_binary, action}, [<<"io">>, <<"list">>], <<>>},
            {{not_binary, action}, 42, <<>>},
            {{not_binary, result}, <<"a">>, #{}},
            {{not_binary, result}, <<"a">>, {ok, 1}},
            {{payload_too_large, ?MIB + 1, ?MIB}, <<0:(8 * ?MIB)>>, <<1>>},
            {{payload_too_large, ?MIB + 1, ?MIB}, <<1>>, <<0:(8 * ?MIB)>>},
            {{payload_too_large, 2 * ?MIB, ?MIB}, <<0:(8 * ?MIB)>>, <<0:(8 * ?MIB)>>}
        ],
        [?assertEqual({error, Why}, autonomic_ledger:append(L, A, R)) || {Why, A, R} <- Bad],
        ?assertEqual(Root, autonomic_ledger:root(L)),
        %% Exactly 1 MiB together is accepted.
        {ok, Big} = autonomic_ledger:append(L, <<"big">>, <<0:(8 * (?MIB - 3))>>),
        ?assertMatch(#{seq := 1}, Big),
        ?assertEqual({ok, [R0, Big]}, autonomic_ledger:tail(L, 2)),
        ok = autonomic_ledger:close(L)
    end).

bad_read_arguments(Dir) ->
    ?_test(begin
        L = open(Dir),
        _ = append_n(L, 3),
        Root = autonomic_ledger:root(L),
        ?assertEqual({error, invalid_id}, autonomic_ledger:get(L, 42)),
        ?assertEqual({error, invalid_id}, autonomic_ledger:get(L, <<"not-an-id">>)),
        ?assertEqual({error, invalid_id}, autonomic_ledger:get(L, <<"0190f0a1-b2c3-7000-8000-00000000000g">>)),
        ?assertEqual({error, invalid_id}, autonomic_ledger:get(L, <<"0190f0a1b2c3-7000-8000-000000000000-">>)),
        ?assertEqual({error, not_found}, autonomic_ledger:get(L, <<"0190f0a1-b2c3-7000-8000-000000000000">>)),
        ?assertEqual({error, {invalid_count, -1}}, autonomic_ledger:tail(L, -1)),
        ?assertEqual({error, {invalid_count, all}}, autonomic_ledger:tail(L, all)),
        ?assertEqual({error, {not_binary, action}}, autonomic_ledger:by_action(L, act)),
        ?assertEqual({error, {no_such_record, 3, 3}}, autonomic_ledger:inclusion_proof(L, 3)),
        ?assertEqual({error, {invalid_seq, -1}}, autonomic_ledger:inclusion_proof(L, -1)),
        ?assertEqual({error, {invalid_seq, 1.0}}, autonomic_ledger:inclusion_proof(L, 1.0)),
        ?assertEqual({error, {bad_old_size, 0, 3}}, autonomic_ledger:consistency_proof(L, 0)),
        ?assertEqual({error, {bad_old_size, 4, 3}}, autonomic_ledger:consistency_proof(L, 4)),
        ?assertEqual({error, {invalid_size, x}}, autonomic_ledger:consistency_proof(L, x)),
        ?assertEqual({error, {invalid_seq, 1 bsl 64}}, autonomic_ledger:inclusion_proof(L, 1 bsl 64)),
        ?assertEqual(Root, autonomic_ledger:root(L)),
        ok = autonomic_ledger:close(L)
    end).

unknown_and_closed_handles(Dir) ->
    ?_test(begin
        Unknown = [nope, make_ref(), self(), {ledger, 1}, <<"audit">>, 42],
        Calls = fun(H) -> [
            autonomic_ledger:append(H, <<"a">>, <<"r">>),
            autonomic_ledger:verify(H),
            autonomic_ledger:get(H, <<"0190f0a1-b2c3-7000-8000-000000000000">>),
            autonomic_ledger:tail(H, 1),
            autonomic_ledger:by_action(H, <<"a">>),
            autonomic_ledger:size(H),
            autonomic_ledger:root(H),
            autonomic_ledger:inclusion_proof(H, 0),
            autonomic_ledger:consistency_proof(H, 1),
            autonomic_ledger:info(H),
            autonomic_ledger:close(H)
        ] end,
        [[?assertEqual({error, {unknown_ledger, H}}, Result) || Result <- Calls(H)] || H <- Unknown],
        L = open(Dir),
        _ = append_n(L, 1),
        ok = autonomic_ledger:close(L),
        [?assertEqual({error, closed}, Result) || Result <- Calls(L)]
    end).

%% Appenders that keep appending until refused; each reports what it got acknowledged.
start_appenders(L, N) ->
    Self = self(),
    [spawn_link(fun() -> Self ! {appended, self(), keep_appending(L, [])} end) || _ <- lists:seq(1, N)].

keep_appending(L, Acked) ->
    case autonomic_ledger:append(L, <<"busy">>, integer_to_binary(length(Acked))) of
        {ok, R} -> keep_appending(L, [R | Acked]);
        {error, Reason} when Reason =:= closed; element(1, Reason) =:= unknown_ledger -> Acked
    end.

collect_appenders(Pids) ->
    lists:append([receive {appended, P, Acked} -> Acked after 30000 -> error({appender_hung, P}) end
                  || P <- Pids]).

all_present(Dir, Acked) ->
    L = open(Dir),
    [?assertEqual({ok, R}, autonomic_ledger:get(L, Id)) || R = #{id := Id} <- Acked],
    ?assertEqual(ok, autonomic_ledger:verify(L)),
    ok = autonomic_ledger:close(L).

%% Closing while 50 processes append: every one of them gets an answer (a receipt, or closed),
%% and every receipt handed out is in the ledger when it is reopened.
close_while_appending_answers_everyone(Dir) ->
    {timeout, 60, ?_test(begin
        L = open(Dir),
        Pids = start_appenders(L, 50),
        ok = wait_for(fun() -> autonomic_ledger:size(L) >= 500 end),
        ok = autonomic_ledger:close(L),
        Acked = collect_appenders(Pids),
        ?assert(length(Acked) >= 500),
        all_present(Dir, Acked)
    end)}.

%% The same when the owner dies instead: the NIF closes the ledger on its own.
owner_death_while_appending_answers_everyone(Dir) ->
    {timeout, 60, ?_test(begin
        Self = self(),
        Owner = spawn(fun() ->
            {ok, L} = autonomic_ledger:open(name(), #{dir => filename:join(Dir, "ledger")}),
            Self ! {opened, L},
            receive never -> ok end
        end),
        L = receive {opened, H} -> H end,
        Pids = start_appenders(L, 50),
        ok = wait_for(fun() -> autonomic_ledger:size(L) >= 500 end),
        exit(Owner, kill),
        Acked = collect_appenders(Pids),
        ?assert(length(Acked) >= 500),
        all_present(Dir, Acked)
    end)}.

wait_for(Fun) ->
    wait_for(Fun, erlang:monotonic_time(millisecond) + 20000).

wait_for(Fun, Deadline) ->
    case Fun() of
        true -> ok;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> error(timeout);
                false -> timer:sleep(5), wait_for(Fun, Deadline)
            end
    end.
