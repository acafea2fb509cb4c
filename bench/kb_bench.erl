%%% @doc Knowledge base benchmark (`make bench', or `sh bench/run.sh kb_bench'); not a test,
%%% nothing here asserts a time.
%%%
%%% Measures, in one run on this machine:
%%% <ol>
%%%   <li>top-10 similarity queries (threshold 0.7) over 10,000 and 100,000 failures, side by
%%%       side: (a) the NIF, (b) brute force in pure Erlang (`kb_model', Jaccard over `sets',
%%%       record sets built once), (c) naive Rust with `HashSet's, and (a') the same Rust index
%%%       without the NIF; every variant's results are checked against the others;</li>
%%%   <li>record throughput: `autonomic_kb:record/1' (owner process, persistence, broadcast)
%%%       from one and from several callers, and the raw NIF insert;</li>
%%%   <li>query latency while another process records continuously, against idle;</li>
%%%   <li>1,000,000 failures: load time, memory, and query time (dirty scheduler when needed).</li>
%%% </ol>
%%%
%%% The data set is synthetic and deterministic: 200 failure archetypes of 4 to 7 "core"
%%% symptoms (drawn from a vocabulary of 500), each failure an archetype with every core symptom
%%% dropped with probability 0.15 plus 0 to 2 noise symptoms drawn from a Zipf(1.1) distribution
%%% over the vocabulary (so a few symptoms are very common). Queries are fresh samples of the same
%%% process: "a new failure, which past ones look like it?".
-module(kb_bench).

-export([main/0, main/1]).

-define(VOCAB, 500).
-define(ARCHETYPES, 200).
-define(THRESHOLD, 0.7).
-define(LIMIT, 10).
-define(QUERIES, 200).

main() -> main(#{}).

main(Opts) ->
    Sizes = maps:get(sizes, Opts, [10000, 100000]),
    Million = maps:get(million, Opts, 1000000),
    Dir = filename:join(["/tmp", "autonomic-kb-bench-" ++ os:getpid()]),
    ok = application:load(autonomic),
    ok = application:set_env(autonomic, data_dir, Dir),
    {ok, _} = application:ensure_all_started(autonomic),
    io:format("knowledge base benchmark: ~b schedulers, ~b dirty CPU schedulers, OTP ~s~n~n",
              [erlang:system_info(schedulers_online), erlang:system_info(dirty_cpu_schedulers_online),
               erlang:system_info(otp_release)]),
    try
        Rows = [query_row(N) || N <- Sizes],
        print_query_table(Rows),
        record_throughput(),
        latency_under_writes(),
        million(Million)
    after
        _ = application:stop(autonomic),
        _ = file:del_dir_r(Dir)
    end,
    ok.

%%% 1. Query time side by side

query_row(N) ->
    io:format("  ~b failures: generating, loading ...~n", [N]),
    Now = erlang:system_time(millisecond),
    World = world({17, 42, 7}),
    Fs = [failure(World, I, Now) || I <- lists:seq(1, N)],
    Qs = queries(World),
    {ok, H} = autonomic_nif:kb_new(#{max_records => N}),
    {LoadUs, _} = timer:tc(fun() -> [insert(H, F, Now) || F <- Fs] end),
    %% (a) the NIF, 5 times each query.
    {NifNs, NifResults, Dirty} = time_nif(H, Qs, 5),
    %% (b) pure Erlang: as many queries as fit in a few seconds.
    Prepared = kb_model:prepare(Fs),
    ErlQs = lists:sublist(Qs, max(5, 500000 div N)),
    ErlRuns = [begin
                   T0 = erlang:monotonic_time(nanosecond),
                   R = kb_model:similar_prepared(Prepared, Q, ?THRESHOLD, ?LIMIT),
                   {erlang:monotonic_time(nanosecond) - T0, R}
               end || Q <- ErlQs],
    AgreeErl = [R || {_, R} <- ErlRuns] =:= lists:sublist(NifResults, length(ErlQs)),
    %% (c) and (a'): the Rust example on the same data and queries.
    Rust = run_rust(H, Qs, N),
    Found = lists:sum([length(R) || R <- NifResults]) / length(Qs),
    #{n => N, load_us => LoadUs, found => Found, dirty => Dirty,
      nif => summary(NifNs), erlang => summary([T || {T, _} <- ErlRuns]), erlang_queries => length(ErlQs),
      agree_erlang => AgreeErl, rust => Rust}.

%% Each query `Reps' times, keeping its best time: the other runs measure this machine's other
%% load (preemption of the scheduler thread), not the search.
time_nif(H, Qs, Reps) ->
    time_nif_at(H, Qs, Reps, ?THRESHOLD).

%% As autonomic_kb:similar/2 does: the normal scheduler, or a dirty one when the NIF says so.
search(H, Q, T, L) ->
    case autonomic_nif:kb_similar(H, Q, T, L) of
        dirty -> {dirty, autonomic_nif:kb_similar_dirty(H, Q, T, L)};
        R when is_list(R) -> {normal, R}
    end.

insert(H, F, Now) ->
    case autonomic_nif:kb_insert(H, F, Now) of
        busy -> autonomic_nif:kb_insert_dirty(H, F, Now);
        R -> R
    end.

run_rust(H, Qs, N) ->
    Out = filename:absname("bench/out"),
    Data = filename:join(Out, "kb_" ++ integer_to_list(N) ++ ".json"),
    QFile = filename:join(Out, "kb_queries.tsv"),
    {ok, N} = autonomic_nif:kb_export(H, list_to_binary(Data)),
    ok = file:write_file(QFile, [[lists:join($\t, Q), $\n] || Q <- Qs]),
    case os:find_executable("cargo") of
        false ->
            #{error => "cargo not found"};
        Cargo ->
            Cmd = io_lib:format("~ts run --release --quiet --example kb_bench -- ~ts ~ts ~p ~b 5 2>&1",
                                [Cargo, Data, QFile, ?THRESHOLD, ?LIMIT]),
            Output = os:cmd(lists:flatten(Cmd)),
            _ = file:delete(Data),
            parse_rust(Output)
    end.

parse_rust(Output) ->
    Lines = [string:lexemes(L, " ") || L <- string:lexemes(Output, "\n")],
    Found = [{list_to_atom(Name), #{mean => list_to_integer(M), p50 => list_to_integer(P50),
                                    p99 => list_to_integer(P99), agree => Agree =:= "true"}}
             || [Name, _N, M, P50, P99, Agree] <- Lines, Name =:= "naive" orelse Name =:= "core"],
    case Found of
        [_, _] -> maps:from_list(Found);
        _ -> #{error => Output}
    end.

print_query_table(Rows) ->
    io:format("~ntop-~b query, threshold ~p: mean / p50 / p99 over ~b queries of each query's best of 5 runs "
              "((b): one run), microseconds; speedup = variant mean / NIF mean~n",
              [?LIMIT, ?THRESHOLD, ?QUERIES]),
    io:format("~-34s", [""]),
    [io:format("~42s", [io_lib:format("~s failures", [thousands(N)])]) || #{n := N} <- Rows],
    io:format("~n"),
    Variants = [
        {"(a) NIF (autonomic_kb:similar/2)", fun(R) -> {maps:get(nif, R), 1.0} end},
        {"(b) pure Erlang brute force", fun(R) -> rel(maps:get(erlang, R), R) end},
        {"(c) naive Rust, HashSet per record", fun(R) -> rust(naive, R) end},
        {"(a') same Rust index, no NIF", fun(R) -> rust(core, R) end}
    ],
    [begin
         io:format("~-34s", [Name]),
         [case F(R) of
              {{Mean, P50, P99}, X} -> io:format("~10s ~9s ~9s ~10s", [us(Mean), us(P50), us(P99), times(X)]);
              {error, E} -> io:format("~42s", [E])
          end || R <- Rows],
         io:format("~n")
     end || {Name, F} <- Variants],
    [io:format("  ~s failures: loaded in ~.1f ms (~.2f us/record); ~.1f results per query on average; "
               "~b of ~b NIF runs went to a dirty scheduler; (b) timed on ~b queries; "
               "results identical: (a)=(b) ~s, (a)=(c)=(a') ~s~n",
               [thousands(N), LoadUs / 1000, LoadUs / N, Found, Dirty, 5 * ?QUERIES, EQ, yes(AE), yes(rust_agree(Rust))])
     || #{n := N, load_us := LoadUs, found := Found, dirty := Dirty, agree_erlang := AE, rust := Rust,
          erlang_queries := EQ} <- Rows],
    io:format("~n").

rel({Mean, _, _} = S, #{nif := {NifMean, _, _}}) -> {S, Mean / max(1, NifMean)}.

rust(Which, #{rust := Rust} = R) ->
    case Rust of
        #{Which := #{mean := M, p50 := P50, p99 := P99}} -> rel({M, P50, P99}, R);
        #{error := E} -> {error, string:slice(string:trim(E), 0, 40)}
    end.

rust_agree(#{naive := #{agree := A}, core := #{agree := B}}) -> A andalso B;
rust_agree(_) -> false.

%%% 2. Record throughput

record_throughput() ->
    io:format("record throughput~n"),
    ok = autonomic_kb:clear(),
    World = world({3, 1, 4}),
    Now = erlang:system_time(millisecond),
    N = 50000,
    New = [maps:without([id, timestamp], failure(World, I, Now)) || I <- lists:seq(1, N)],
    Rate = fun(Count, Us) -> Count / (Us / 1.0e6) end,
    {Us1, _} = timer:tc(fun() -> [{ok, _} = autonomic_kb:record(F) || F <- New] end),
    Callers = 2 * erlang:system_info(schedulers_online),
    Each = N div Callers,
    {UsP, _} = timer:tc(fun() -> parallel(Callers, fun(C) ->
                   [{ok, _} = autonomic_kb:record(F) || F <- lists:sublist(New, 1 + C * Each, Each)]
               end) end),
    {ok, H} = autonomic_nif:kb_new(#{}),
    Raw = [failure(World, I, Now) || I <- lists:seq(1, 200000)],
    {UsRaw, _} = timer:tc(fun() -> [insert(H, F, Now) || F <- Raw] end),
    {UsFlush, ok} = timer:tc(fun autonomic_kb:flush/0),
    #{records := Size, evicted_limit := Evicted} = autonomic_kb:info(),
    io:format("  autonomic_kb:record/1, 1 caller          ~12s records/s (~.1f us each: owner call, insert, log line, broadcast)~n",
              [thousands(round(Rate(N, Us1))), Us1 / N]),
    io:format("  autonomic_kb:record/1, ~b callers         ~12s records/s (serialized by the owner process)~n",
              [Callers, thousands(round(Rate(Each * Callers, UsP)))]),
    io:format("  NIF kb_insert, 1 caller (no owner)       ~12s records/s (~.2f us each; includes the 10,000 bound's evictions)~n",
              [thousands(round(Rate(length(Raw), UsRaw))), UsRaw / length(Raw)]),
    io:format("  base after the run: ~b records (~b evicted at the bound); final flush ~.1f ms~n~n",
              [Size, Evicted, UsFlush / 1000]).

parallel(N, Fun) ->
    Parent = self(),
    Pids = [spawn_link(fun() -> Fun(C), Parent ! {done, self()} end) || C <- lists:seq(0, N - 1)],
    [receive {done, P} -> ok end || P <- Pids],
    ok.

%%% 3. Query latency while another process records

latency_under_writes() ->
    io:format("query latency (autonomic_kb:similar/2 over the 10,000 records above) while another process records~n"),
    World = world({2, 7, 1}),
    Qs = list_to_tuple(queries(World)),
    Samples = 20000,
    Idle = latencies(Qs, Samples),
    %% Control: another process keeps a scheduler busy without touching the knowledge base, so
    %% that CPU contention (2 cores here) can be told apart from waiting for writes.
    {Burning, _, _} = beside(fun burner/2, World, Qs, Samples),
    Waits0 = read_waits(),
    {Busy, Written, Secs} = beside(fun recorder/2, World, Qs, Samples),
    {WaitN, WaitTotal, WaitMax} = read_waits(),
    {WaitN0, WaitTotal0, _} = Waits0,
    io:format("  ~-40s ~9s ~9s ~9s ~9s~n", ["", "p50 us", "p99 us", "p99.9 us", "max us"]),
    [io:format("  ~-40s ~9s ~9s ~9s ~9s~n", [Name, us(pct(L, 0.5)), us(pct(L, 0.99)), us(pct(L, 0.999)), us(lists:last(L))])
     || {Name, L} <- [{"idle", Idle}, {"beside a CPU-bound process (control)", Burning},
                      {"beside a process recording", Busy}]],
    io:format("  (the recorder added ~s records in ~.1f s meanwhile, ~s records/s)~n",
              [thousands(Written), Secs, thousands(round(Written / Secs))]),
    io:format("  reads that found their copy write-locked: ~b of ~b, waiting ~s us in total (longest wait since start: ~s us);~n"
              "  any other difference is not the lock: the measuring process shares this machine's 2 cores (and their~n"
              "  caches) with the recorder and the owner, which are inserting into the same base~n~n",
              [WaitN - WaitN0, Samples, us(WaitTotal - WaitTotal0), us(WaitMax)]).

read_waits() ->
    #{read_waits := N, read_wait_total_ns := T, read_wait_max_ns := M} = autonomic_kb:info(),
    {N, T, M}.

%% Measures query latencies while `Other' runs in another process; returns them with the count
%% `Other' reports and the duration.
beside(Other, World, Qs, Samples) ->
    Parent = self(),
    Pid = spawn_link(fun() -> Other(World, Parent) end),
    T0 = erlang:monotonic_time(microsecond),
    L = latencies(Qs, Samples),
    Pid ! stop,
    N = receive {done, C} -> C end,
    {L, N, (erlang:monotonic_time(microsecond) - T0) / 1.0e6}.

latencies(Qs, N) ->
    lists:sort([begin
                    Q = element(1 + I rem tuple_size(Qs), Qs),
                    T0 = erlang:monotonic_time(nanosecond),
                    R = autonomic_kb:similar(Q, #{threshold => ?THRESHOLD, limit => ?LIMIT}),
                    T1 = erlang:monotonic_time(nanosecond),
                    true = is_list(R),
                    T1 - T0
                end || I <- lists:seq(1, N)]).

recorder(World, Parent) ->
    recorder(World, Parent, 0).

recorder(World, Parent, N) ->
    receive
        stop -> Parent ! {done, N}
    after 0 ->
        F = maps:without([id, timestamp], failure(World, N, 0)),
        {ok, _} = autonomic_kb:record(F),
        recorder(World, Parent, N + 1)
    end.

burner(World, Parent) ->
    burner(World, Parent, 0).

burner(World, Parent, N) ->
    receive
        stop -> Parent ! {done, N}
    after 0 ->
        %% The same work as the recorder minus the knowledge base: building a failure.
        _ = maps:without([id, timestamp], failure(World, N, 0)),
        burner(World, Parent, N + 1)
    end.

%%% 4. A million failures

million(N) ->
    io:format("~s failures (NIF, private base; the search runs on a dirty scheduler when the NIF says so)~n", [thousands(N)]),
    garbage_collect(),
    Mem0 = erlang:memory(system),
    {ok, H} = autonomic_nif:kb_new(#{max_records => N}),
    World = world({17, 42, 7}),
    Now = erlang:system_time(millisecond),
    {LoadUs, _} = timer:tc(fun() -> load(H, World, Now, 1, N) end),
    Mem1 = erlang:memory(system),
    N = autonomic_nif:kb_size(H),
    #{symptoms := Symptoms, posting_entries := Postings} = autonomic_nif:kb_info(H),
    io:format("  loaded in ~.1f s (~.2f us/record); erlang:memory(system) grew ~b MB: ~b bytes/record "
              "(two left-right copies of records and index); ~b symptoms, ~s postings~n",
              [LoadUs / 1.0e6, LoadUs / N, round((Mem1 - Mem0) / 1.0e6), round((Mem1 - Mem0) / N), Symptoms, thousands(Postings)]),
    Qs = lists:sublist(queries(World), 50),
    [begin
         {Ns, Results, Dirty} = time_nif_at(H, Qs, 3, T),
         {Mean, P50, P99} = summary(Ns),
         Found = lists:sum([length(R) || R <- Results]) / length(Qs),
         io:format("  top-~b, threshold ~-4s mean ~8s us, p50 ~8s us, p99 ~8s us (best of 3 per query; ~b of ~b runs dirty; ~.1f results per query)~n",
                   [?LIMIT, io_lib:format("~p", [T]), us(Mean), us(P50), us(P99), Dirty, 3 * length(Qs), Found])
     end || T <- [?THRESHOLD, 0.5, 0.3]],
    {ScanNs, _, _} = time_nif_at(H, lists:sublist(Qs, 5), 1, 0.0),
    io:format("  worst case, threshold 0 (every record matches: a full scan): mean ~s us~n~n", [us(element(1, summary(ScanNs)))]).

time_nif_at(H, Qs, Reps, T) ->
    lists:foldr(
        fun(Q, {Ns, Rs, D}) ->
            Runs = [begin
                        T0 = erlang:monotonic_time(nanosecond),
                        {Where, R} = search(H, Q, T, ?LIMIT),
                        {erlang:monotonic_time(nanosecond) - T0, Where, R}
                    end || _ <- lists:seq(1, Reps)],
            {_, _, R} = hd(Runs),
            Best = lists:min([X || {X, _, _} <- Runs]),
            {[Best | Ns], [R | Rs], D + length([x || {_, dirty, _} <- Runs])}
        end, {[], [], 0}, Qs).

load(_H, _World, _Now, I, N) when I > N -> ok;
load(H, World, Now, I, N) ->
    {added, _, _} = insert(H, failure(World, I, Now), Now),
    load(H, World, Now, I + 1, N).

%%% The synthetic world

world(Seed) ->
    _ = rand:seed(exsss, Seed),
    Zipf = zipf(?VOCAB, 1.1),
    Archetypes = list_to_tuple([archetype(I) || I <- lists:seq(1, ?ARCHETYPES)]),
    #{zipf => Zipf, archetypes => Archetypes}.

archetype(I) ->
    Size = 3 + rand:uniform(4),
    Core = lists:usort([symptom(rand:uniform(?VOCAB)) || _ <- lists:seq(1, Size)]),
    {Core, list_to_atom("failure_" ++ integer_to_list(I rem 12))}.

symptom(K) -> <<"sym-", (integer_to_binary(K))/binary>>.

%% Cumulative Zipf(S) weights over 1..N, as a tuple for binary search.
zipf(N, S) ->
    {Cum, _} = lists:mapfoldl(fun(K, Acc) -> V = Acc + 1 / math:pow(K, S), {V, V} end, 0.0, lists:seq(1, N)),
    list_to_tuple(Cum).

zipf_pick(Cum) ->
    X = rand:uniform() * element(tuple_size(Cum), Cum),
    zipf_search(Cum, X, 1, tuple_size(Cum)).

zipf_search(_Cum, _X, Lo, Lo) -> Lo;
zipf_search(Cum, X, Lo, Hi) ->
    Mid = (Lo + Hi) div 2,
    case element(Mid, Cum) >= X of
        true -> zipf_search(Cum, X, Lo, Mid);
        false -> zipf_search(Cum, X, Mid + 1, Hi)
    end.

sample(#{zipf := Zipf, archetypes := Archs}) ->
    {Core, Type} = element(rand:uniform(tuple_size(Archs)), Archs),
    Kept = [S || S <- Core, rand:uniform() > 0.15],
    Noise = [symptom(zipf_pick(Zipf)) || _ <- lists:seq(1, rand:uniform(3) - 1)],
    {lists:usort(Kept ++ Noise), Type}.

failure(World, I, Now) ->
    {Symptoms, Type} = sample(World),
    #{id => <<"f", (integer_to_binary(I))/binary>>,
      failure_type => Type,
      root_cause => <<"bench">>,
      symptoms => Symptoms,
      strategy => lists:nth(rand:uniform(8), autonomic_kb:strategies()),
      recovery_ms => rand:uniform(5000),
      success => rand:uniform() < 0.8,
      timestamp => Now - I}.

queries(World) ->
    _ = rand:seed(exsss, {99, 98, 97}),
    [element(1, sample(World)) || _ <- lists:seq(1, ?QUERIES)].

%%% Formatting

summary(Ns) ->
    S = lists:sort(Ns),
    {lists:sum(S) div max(1, length(S)), pct(S, 0.5), pct(S, 0.99)}.

pct([], _) -> 0;
pct(Sorted, P) -> lists:nth(max(1, min(length(Sorted), round(P * length(Sorted)))), Sorted).

us(Ns) when Ns < 10000 -> io_lib:format("~.2f", [Ns / 1000]);
us(Ns) when Ns < 1000000 -> io_lib:format("~.1f", [Ns / 1000]);
us(Ns) -> thousands(round(Ns / 1000)).

times(X) when X < 1.5 -> "1x";
times(X) -> io_lib:format("~sx", [thousands(round(X))]).

yes(true) -> "yes";
yes(false) -> "NO".

thousands(N) when is_integer(N), N < 0 -> "-" ++ thousands(-N);
thousands(N) when is_integer(N) ->
    S = integer_to_list(N),
    Groups = lists:reverse(group3(lists:reverse(S))),
    lists:flatten(lists:join(",", Groups)).

group3([A, B, C | T]) -> [lists:reverse([A, B, C]) | group3(T)];
group3([]) -> [];
group3(L) -> [lists:reverse(L)].
