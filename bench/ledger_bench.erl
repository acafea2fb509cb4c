%%% @doc Ledger benchmark (`make bench', or `sh bench/run.sh ledger_bench'); not a test, nothing
%%% here asserts a time.
%%%
%%% Measures, side by side in one run on this machine's disk, durable appends per second for:
%%% <ul>
%%%   <li>(a) the NIF with group commit (`{group_commit, 0}', the default, and `{group_commit, 2}'),
%%%       2,000 concurrent appenders;</li>
%%%   <li>(b) the NIF with `fsync => always' (one fdatasync per record), one appender and 16;</li>
%%%   <li>(c) a pure Erlang equivalent: the same record format, `crypto:hash' for the chain and the
%%%       Merkle frontier, a raw `file:write' and `file:datasync' per record; and (c2) the same
%%%       with one batching writer process, the Erlang way to group commit;</li>
%%%   <li>(d) the disk's own limit: a write + fdatasync loop of records of the same size, in Rust
%%%       (`native/autonomic_core/examples/fsync_loop.rs', run through cargo) and from Erlang with
%%%       a raw file;</li>
%%% </ul>
%%% each several times, interleaved (the disk is shared, and its fsync latency drifts: a ratio is
%%% taken between runs seconds apart, and medians are printed). The durable appends are measured
%%% twice: in this VM, with the emulator's default scheduler busy-waiting, and in a peer VM started
%%% with the emulator flags of `erlang/vm.args' (the release turns busy-waiting off, which leaves
%%% the ledger's writer thread a core when its fsync completes). Then, on a ledger of 1,000,000
%%% receipts: the time to open it (recovery scan and Merkle rebuild) and the memory it takes,
%%% `verify' throughput, inclusion and consistency proof times, and the pure Erlang verifier's
%%% time to check one proof. The summary sets the figures against the targets of issue 4.
-module(ledger_bench).

-export([main/0, main/1]).

-define(ACTION, <<"restart_chld">>).     % 12 bytes
-define(RESULT, <<"ok in 41 ms; pool=db">>). % 20 bytes: a 104-byte canonical record, 144 on disk
-define(FRAME_BYTES, 144).

main() -> main(#{}).

main(Opts) ->
    Root = filename:absname("bench/out/ledger"),
    _ = file:del_dir_r(Root),
    ok = filelib:ensure_path(Root),
    Cfg = #{
        root => Root,
        rounds => maps:get(rounds, Opts, 5),
        fsync_records => maps:get(fsync_records, Opts, 1500),
        group_records => maps:get(group_records, Opts, 200000),
        appenders => maps:get(appenders, Opts, 2000)
    },
    BigN = maps:get(big, Opts, 1000000),
    Flags = release_vm_flags(),
    io:format("ledger benchmark: ~b schedulers, ~b dirty I/O schedulers, records of ~b bytes on disk, in ~ts~n",
              [erlang:system_info(schedulers_online), erlang:system_info(dirty_io_schedulers), ?FRAME_BYTES, Root]),
    io:format("each figure is the median of ~b rounds; the variants of a round run one after the other, so a "
              "ratio compares runs seconds apart on the same disk~n", [maps:get(rounds, Cfg)]),
    io:format("durable appends are measured twice: in this VM (default scheduler busy-waiting), and in a peer "
              "VM with the scheduler flags of erlang/vm.args, the release's (~ts)~n",
              [lists:join(" ", Flags)]),

    Default = appends(Cfg),
    print_appends("this VM, default flags", Cfg, Default),
    Release = in_peer(Flags, fun() -> appends(Cfg) end),
    print_appends("peer VM, release flags", Cfg, Release),

    io:format("~nledger of ~b receipts (this VM)~n", [BigN]),
    Big = big_ledger(Root, BigN, maps:get(appenders, Cfg)),

    io:format("~nsummary (targets from issue 4); ratios are medians of per-round ratios~n"),
    io:format("  ~-48s ~12s ~12s~n", ["", "default", "release"]),
    Both = fun(Label, Fun, Target) ->
        io:format("  ~-48s ~12s ~12s~s~n", [Label, Fun(Default), Fun(Release),
                                           case Target of "" -> ""; _ -> "   target " ++ Target end])
    end,
    Ratio = fun(A, B, Section) -> fun(R) -> fmt_ratio(ratio(A, B, maps:get(Section, R))) end end,
    Both("(b) 1 appender / (d) disk limit", Ratio(b1, d, fsync), ">= 0.8"),
    Both("(b) 16 appenders / (d) disk limit", Ratio(b16, d, fsync), ">= 0.8"),
    Both("(d) Erlang raw loop / (d) Rust loop", Ratio(d_erl, d, fsync), ""),
    Both("(b) 1 appender / (c) pure Erlang", Ratio(b1, c, fsync), ""),
    Both("(a) group commit / (c2) pure Erlang batching", Ratio(a, c2, group), ""),
    Both("(a) group commit, appends/s", fun(R) -> fmt_rate(median(element(1, maps:get(a, maps:get(group, R))))) end,
         ">= 200,000/s"),
    io:format("  ~-48s ~12s~s~n", ["verify at 1M, records/s", fmt_rate(maps:get(verify, Big)),
                                   "                target >= 1,000,000/s"]),
    io:format("  ~-48s ~9.2f us~s~n", ["inclusion proof at 1M, p99", maps:get(proof_p99, Big),
                                       "                target < 50 us"]),
    _ = file:del_dir_r(Root),
    ok.

%% Both sections of durable appends; prints nothing (it may run in a peer).
appends(#{root := Root, rounds := Rounds, fsync_records := Fsyncs, group_records := GroupN,
          appenders := Appenders}) ->
    Each = GroupN div Appenders,
    #{
        fsync => rounds(Rounds, [
            {d, fun() -> raw_rust(Root, Fsyncs) end},
            {d_erl, fun() -> raw_erlang(Root, Fsyncs) end},
            {b1, fun() -> nif(Root, always, 1, Fsyncs) end},
            {b16, fun() -> nif(Root, always, 16, Fsyncs div 16) end},
            {c, fun() -> pure_erlang(Root, Fsyncs) end}
        ]),
        group => rounds(max(3, Rounds div 2), [
            {a, fun() -> nif(Root, {group_commit, 0}, Appenders, Each) end},
            {a2, fun() -> nif(Root, {group_commit, 2}, Appenders, Each) end},
            {c2, fun() -> pure_erlang_group(Root, Appenders, Each) end}
        ])
    }.

print_appends(Where, #{fsync_records := Fsyncs, group_records := GroupN, appenders := Appenders}, R) ->
    io:format("~ndurable appends per second, one fdatasync per record (~b records per run; ~s)~n",
              [Fsyncs, Where]),
    F = maps:get(fsync, R),
    report("(d) disk limit: Rust write+fdatasync loop", d, F),
    report("(d) disk limit: Erlang raw write+datasync loop", d_erl, F),
    report("(b) NIF, fsync always, 1 appender", b1, F),
    report("(b) NIF, fsync always, 16 appenders", b16, F),
    report("(c) pure Erlang, datasync per record", c, F),
    io:format("durable appends per second, group commit (~b appenders, ~b records per run; ~s)~n",
              [Appenders, GroupN, Where]),
    G = maps:get(group, R),
    report("(a) NIF, {group_commit, 0} (the default)", a, G),
    report("(a) NIF, {group_commit, 2}", a2, G),
    report("(c2) pure Erlang, batching writer process", c2, G).

%% Runs every variant once per round, in order: #{Key => {[Rate per round], LastExtra}}.
rounds(N, Variants) ->
    PerRound = [[{K, Run()} || {K, Run} <- Variants] || _ <- lists:seq(1, N)],
    Rates = maps:groups_from_list(fun({K, _}) -> K end, fun({_, {Rate, _}}) -> Rate end, lists:append(PerRound)),
    maps:from_list([{K, {maps:get(K, Rates), Extra}} || {K, {_, Extra}} <- lists:last(PerRound)]).

%% The `+' flags of erlang/vm.args (the release's emulator flags).
release_vm_flags() ->
    {ok, Bin} = file:read_file("erlang/vm.args"),
    lists:append([string:lexemes(L, " ") || L <- string:split(binary_to_list(Bin), "\n", all),
                                              lists:prefix("+", string:trim(L))]).

%% Runs Fun in a fresh VM started with Flags and the same code paths; returns its result.
in_peer(Flags, Fun) ->
    Paths = lists:append([["-pa", P] || P <- code:get_path(), filelib:is_dir(P)]),
    %% Not distributed: the control connection is the peer's standard I/O.
    {ok, Peer, _Node} = peer:start(#{connection => standard_io, args => ["+P", "2000000" | Flags] ++ Paths}),
    try peer:call(Peer, erlang, apply, [Fun, []], infinity)
    after peer:stop(Peer)
    end.

%%% (d) the disk's limit. Each variant returns {AppendsPerSecond, Extra}.

raw_rust(Root, N) ->
    Path = filename:join(Root, "raw_rust.dat"),
    Manifest = filename:absname("Cargo.toml"),
    Cmd = "cargo run --release --quiet --manifest-path '" ++ Manifest ++ "' --example fsync_loop -- '" ++ Path
          ++ "' " ++ integer_to_list(N) ++ " " ++ integer_to_list(?FRAME_BYTES) ++ " 2>&1",
    Out = string:trim(os:cmd(Cmd)),
    case string:lexemes(lists:last(string:split(Out, "\n", all)), " ") of
        [Count, Secs] -> {list_to_integer(Count) / list_to_float(Secs), #{}};
        _ -> error({fsync_loop_failed, Out})
    end.

raw_erlang(Root, N) ->
    Path = filename:join(Root, "raw_erlang.dat"),
    {ok, Fd} = file:open(Path, [raw, binary, write, append]),
    Rec = binary:copy(<<16#5a>>, ?FRAME_BYTES),
    {T, ok} = timer:tc(fun() -> raw_loop(Fd, Rec, N) end),
    ok = file:close(Fd),
    ok = file:delete(Path),
    {N / (T / 1.0e6), #{}}.

raw_loop(_Fd, _Rec, 0) -> ok;
raw_loop(Fd, Rec, N) ->
    ok = file:write(Fd, Rec),
    ok = file:datasync(Fd),
    raw_loop(Fd, Rec, N - 1).

%%% (a), (b): the NIF

nif(Root, Fsync, Appenders, Each) ->
    Dir = filename:join(Root, "nif_" ++ integer_to_list(erlang:unique_integer([positive]))),
    {ok, L} = autonomic_ledger:open(bench, #{dir => Dir, fsync => Fsync}),
    Lat = run_appenders(Appenders, Each, fun() -> {ok, _} = autonomic_ledger:append(L, ?ACTION, ?RESULT) end),
    {ok, #{fsyncs := Fsyncs, appends := N, fsync_seconds := FsyncSeconds}} = autonomic_ledger:info(L),
    ok = autonomic_ledger:close(L),
    _ = file:del_dir_r(Dir),
    {N / maps:get(seconds, Lat), Lat#{per_fsync => N / Fsyncs, fsync_us => FsyncSeconds / Fsyncs * 1.0e6}}.

%% Runs `Appenders' processes doing `Each' calls of `Fun' each; returns the wall time and
%% per-call latency percentiles (from the first appender's calls).
run_appenders(Appenders, Each, Fun) ->
    Self = self(),
    Go = make_ref(),
    Pids = [spawn_link(fun() ->
                receive Go -> ok end,
                Lat = [begin
                           T0 = erlang:monotonic_time(),
                           Fun(),
                           erlang:monotonic_time() - T0
                       end || _ <- lists:seq(1, Each)],
                Self ! {done, self(), case I of 1 -> Lat; _ -> [] end}
            end) || I <- lists:seq(1, Appenders)],
    T0 = erlang:monotonic_time(),
    [P ! Go || P <- Pids],
    Lats = lists:append([receive {done, P, Lat} -> Lat end || P <- Pids]),
    Seconds = erlang:convert_time_unit(erlang:monotonic_time() - T0, native, microsecond) / 1.0e6,
    Sorted = lists:sort(Lats),
    #{seconds => Seconds, p50 => pct(Sorted, 0.5), p99 => pct(Sorted, 0.99)}.

%% Percentile of sorted native-unit durations, in microseconds.
pct([], _) -> 0.0;
pct(Sorted, P) ->
    Native = lists:nth(max(1, round(P * length(Sorted))), Sorted),
    erlang:convert_time_unit(Native, native, nanosecond) / 1000.0.

%%% (c) pure Erlang

%% The same record format, hash chain and Merkle frontier as the NIF, one datasync per record.
pure_erlang(Root, N) ->
    Path = filename:join(Root, "pure_erlang.seg"),
    {ok, Fd} = file:open(Path, [raw, binary, write, append]),
    {T, _} = timer:tc(fun() -> pe_loop(Fd, 0, N, <<0:256>>, []) end),
    ok = file:close(Fd),
    ok = file:delete(Path),
    {N / (T / 1.0e6), #{}}.

pe_loop(_Fd, Seq, Seq, Prev, Frontier) -> {Prev, Frontier};
pe_loop(Fd, Seq, N, Prev, Frontier) ->
    {Frame, Hash} = pe_frame(Seq, Prev),
    ok = file:write(Fd, Frame),
    ok = file:datasync(Fd),
    pe_loop(Fd, Seq + 1, N, Hash, pe_push(Frontier, leaf(Hash))).

pe_frame(Seq, Prev) ->
    Id = <<(erlang:unique_integer([positive, monotonic])):128>>,
    Ts = erlang:system_time(microsecond),
    Canon = <<Seq:64, Id/binary, Prev/binary, Ts:64/signed, (byte_size(?ACTION)):32, ?ACTION/binary,
              (byte_size(?RESULT)):32, ?RESULT/binary>>,
    Hash = crypto:hash(sha256, Canon),
    Len = byte_size(Canon) + 32,
    {[<<Len:32, (erlang:crc32(<<Len:32>>)):32>>, Canon, Hash], Hash}.

leaf(Hash) -> crypto:hash(sha256, [<<0>>, Hash]).

%% Compact range: [{Height, Hash}] of the perfect subtrees on the right edge, smallest first.
pe_push([{H, Left} | Rest], {H, Right}) -> pe_push(Rest, {H + 1, crypto:hash(sha256, [<<1>>, Left, Right])});
pe_push(Frontier, {H, Hash}) -> [{H, Hash} | Frontier];
pe_push(Frontier, Leaf) -> pe_push(Frontier, {0, Leaf}).

%% (c2): appenders send to one writer process, which writes everything queued with one write
%% and one datasync, then replies.
pure_erlang_group(Root, Appenders, Each) ->
    Path = filename:join(Root, "pure_erlang_group.seg"),
    %% A raw file belongs to the process that opened it: the writer opens its own.
    Writer = spawn_link(fun() ->
        {ok, Fd} = file:open(Path, [raw, binary, write, append]),
        pe_writer(Fd, 0, <<0:256>>, [])
    end),
    Lat = run_appenders(Appenders, Each, fun() ->
        Ref = make_ref(),
        Writer ! {append, self(), Ref},
        receive {Ref, {ok, _Seq}} -> ok end
    end),
    unlink(Writer),
    exit(Writer, kill),
    ok = file:delete(Path),
    {Appenders * Each / maps:get(seconds, Lat), Lat}.

pe_writer(Fd, Seq, Prev, Frontier) ->
    First = receive {append, _, _} = M -> M end,
    Batch = [First | pe_drain(8191)],
    {Frames, Replies, Seq1, Prev1, Frontier1} = lists:foldl(
        fun({append, Pid, Ref}, {Fs, Rs, S, P, F}) ->
            {Frame, Hash} = pe_frame(S, P),
            {[Frame | Fs], [{Pid, Ref, S} | Rs], S + 1, Hash, pe_push(F, leaf(Hash))}
        end,
        {[], [], Seq, Prev, Frontier}, Batch),
    ok = file:write(Fd, lists:reverse(Frames)),
    ok = file:datasync(Fd),
    [Pid ! {Ref, {ok, S}} || {Pid, Ref, S} <- Replies],
    pe_writer(Fd, Seq1, Prev1, Frontier1).

pe_drain(0) -> [];
pe_drain(N) ->
    receive {append, _, _} = M -> [M | pe_drain(N - 1)]
    after 0 -> []
    end.

%%% The 1,000,000-receipt ledger

big_ledger(Root, N, Appenders) ->
    Dir = filename:join(Root, "big"),
    {ok, L} = autonomic_ledger:open(bench_big, #{dir => Dir}),
    Lat = run_appenders(Appenders, N div Appenders,
                        fun() -> {ok, _} = autonomic_ledger:append(L, ?ACTION, ?RESULT) end),
    Size = autonomic_ledger:size(L),
    io:format("  built with group commit: ~s appends/s (~b appenders)~n",
              [fmt_rate(Size / maps:get(seconds, Lat)), Appenders]),
    ok = autonomic_ledger:close(L),
    erlang:garbage_collect(),
    Mem0 = erlang:memory(system),
    {TOpen, {ok, L2}} = timer:tc(fun() -> autonomic_ledger:open(bench_big, #{dir => Dir}) end),
    Mem = erlang:memory(system) - Mem0,
    io:format("  open (recovery scan, indexes, Merkle rebuild): ~.2f s; in memory ~b bytes per receipt "
              "(erlang:memory(system) growth)~n", [TOpen / 1.0e6, round(Mem / Size)]),
    {TVerify, ok} = timer:tc(fun() -> autonomic_ledger:verify(L2) end),
    VerifyRate = Size / (TVerify / 1.0e6),
    io:format("  verify: ~.2f s, ~s records/s~n", [TVerify / 1.0e6, fmt_rate(VerifyRate)]),
    Seqs = [rand:uniform(Size) - 1 || _ <- lists:seq(1, 20000)],
    ProofTimes = lists:sort([begin
        T0 = erlang:monotonic_time(),
        {ok, _} = autonomic_ledger:inclusion_proof(L2, S),
        erlang:monotonic_time() - T0
    end || S <- Seqs]),
    io:format("  inclusion proof (NIF call, ~b random receipts): p50 ~.2f us, p99 ~.2f us, max ~.2f us~n",
              [length(Seqs), pct(ProofTimes, 0.5), pct(ProofTimes, 0.99), pct(ProofTimes, 1.0)]),
    OldSizes = [rand:uniform(Size) || _ <- lists:seq(1, 5000)],
    ConsTimes = lists:sort([begin
        T0 = erlang:monotonic_time(),
        {ok, _} = autonomic_ledger:consistency_proof(L2, O),
        erlang:monotonic_time() - T0
    end || O <- OldSizes]),
    io:format("  consistency proof (~b random old sizes): p50 ~.2f us, p99 ~.2f us~n",
              [length(OldSizes), pct(ConsTimes, 0.5), pct(ConsTimes, 0.99)]),
    {ok, Sample} = autonomic_ledger:tail(L2, 1000),
    Proofs = [{R, element(2, autonomic_ledger:inclusion_proof(L2, maps:get(seq, R)))} || R <- Sample],
    {TCheck, _} = timer:tc(fun() -> [ok = autonomic_ledger_verify:inclusion(R, P) || {R, P} <- Proofs] end),
    io:format("  pure Erlang check of an inclusion proof (receipt hash + ~b-hash path): ~.2f us~n",
              [length(maps:get(path, element(2, hd(Proofs)))), TCheck / length(Proofs)]),
    ok = autonomic_ledger:close(L2),
    #{verify => VerifyRate, proof_p99 => pct(ProofTimes, 0.99)}.

%%% Output

report(Label, Key, Section) ->
    {Rates, Extra} = maps:get(Key, Section),
    Lat = case Extra of
        #{p50 := P50, p99 := P99} -> io_lib:format("  append p50 ~b us, p99 ~b us", [round(P50), round(P99)]);
        _ -> ""
    end,
    Fsync = case Extra of
        #{per_fsync := PF, fsync_us := FU} -> io_lib:format("  ~.1f receipts per fsync, fdatasync ~b us", [PF, round(FU)]);
        _ -> ""
    end,
    io:format("  ~-50s ~12s/s  (runs: ~s)~s~s~n",
              [Label, fmt_rate(median(Rates)), lists:join(" ", [fmt_rate(R) || R <- Rates]), Lat, Fsync]).

%% {Median, PerRound} of the per-round ratios of two variants.
ratio(A, B, Section) ->
    {As, _} = maps:get(A, Section),
    {Bs, _} = maps:get(B, Section),
    Ratios = [X / Y || {X, Y} <- lists:zip(As, Bs)],
    {median(Ratios), Ratios}.

fmt_ratio({Median, _}) ->
    io_lib:format("~.2f", [Median]).

median(L) ->
    S = lists:sort(L),
    N = length(S),
    case N rem 2 of
        1 -> lists:nth(N div 2 + 1, S);
        0 -> (lists:nth(N div 2, S) + lists:nth(N div 2 + 1, S)) / 2
    end.

fmt_rate(R) ->
    S = integer_to_list(round(R)),
    lists:reverse(string:join(chunk3(lists:reverse(S)), ",")).

chunk3([A, B, C | T]) when T =/= [] -> [[A, B, C] | chunk3(T)];
chunk3(L) -> [L].
