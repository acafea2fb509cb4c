%%% @doc The learning knowledge base: the failures the cluster has seen, how they were
%%% recovered, and which recovery works best (DESIGN.md section 3).
%%%
%%% The Analyze phase asks "which past failures look like this one?" ({@link similar/2}), the
%%% Plan phase asks "which recovery works best here?" ({@link recommend/1},
%%% {@link effectiveness/1}, {@link success_rate/1}), and the Verify phase records every outcome
%%% ({@link record/1}).
%%%
%%% ```
%%% 1> autonomic_kb:record(#{failure_type => node_down, root_cause => <<"netsplit">>,
%%%        symptoms => [<<"heartbeat_lost">>, <<"rpc_timeout">>], strategy => supervisor_restart,
%%%        recovery_ms => 840, success => true}).
%%% {ok,<<"0193f2c1d0a74b1e8c2f6a9d3e5b7c41">>}
%%% 2> autonomic_kb:similar([<<"heartbeat_lost">>, <<"rpc_timeout">>, <<"disk_full">>], #{}).
%%% [{0.6666666666666666, #{id => ..., strategy => supervisor_restart, ...}}]   % threshold 0.7: []
%%% 3> autonomic_kb:recommend([<<"heartbeat_lost">>, <<"rpc_timeout">>]).
%%% [#{strategy => supervisor_restart, score => 0.6666666666666666, weight => 1.0,
%%%    successes => 1, failures => 0}]
%%% '''
%%%
%%% <h3>Records</h3>
%%% A failure is a map `#{id, failure_type, root_cause, symptoms, strategy, recovery_ms, success,
%%% timestamp}'. `record/1' fills `id' (32 hex digits, time-ordered) and `timestamp' (now, in
%%% milliseconds since the Unix epoch) when they are absent; every other key is required, and no
%%% other key is accepted. A given timestamp may be at most 60 s ahead of the node's clock. `failure_type' and `root_cause' are atoms (Latin-1, as NIFs on OTP 25
%%% can only create those) or UTF-8 binaries; `symptoms' is a list of 1 to 1024-byte UTF-8
%%% binaries, a set: at most 256 distinct, returned sorted without duplicates; `strategy' is one
%%% of {@type strategy()}; `recovery_ms' a non-negative integer or float; `success' a boolean.
%%% Records are immutable: recording an id again with the same content is a no-op, with other
%%% content an error.
%%%
%%% <h3>Bounds</h3>
%%% The base keeps the newest `kb_max_records' (default 10,000) records by `(timestamp, id)',
%%% removes records older than `kb_retention_ms' (default 90 days), and, after {@link clear/0},
%%% refuses records stamped before the clear (a record without a timestamp is stamped with the
%%% later of now and the clear, so recording right after a clear always works). The content is thus a function of the records
%%% offered, whatever their order: that is what makes cluster merges a plain union.
%%%
%%% <h3>Reads and writes</h3>
%%% Reads (`similar', `recommend', `success_rate', `effectiveness', `size', `get', `export') call
%%% the NIF directly from the caller's process: no process hop, a few microseconds, and they
%%% never wait for a write in progress for more than one record's insertion. A search too big
%%% for a normal scheduler (over 4,096 posting entries to verify or 256 results to return, which
%%% happens with hundreds of thousands of records or low thresholds) runs on a dirty scheduler. Writes (`record', `import', `clear') go through the owner process
%%% (`autonomic_kb_server'), which persists them and shares them with the cluster.
%%%
%%% <h3>Persistence</h3>
%%% Under `autonomic_config:data_dir()/kb': a snapshot plus an append log of the records added
%%% since. The log is written and fdatasynced every `kb_flush_ms' (default 100 ms); a node killed
%%% with `kill -9' loses at most the records of the last `kb_flush_ms' (none with `kb_flush_ms'
%%% 0, where `record/1' returns only once the record is on disk). A clean stop loses nothing.
%%%
%%% <h3>Cluster</h3>
%%% A record is sent to the owner on every connected node as soon as it is added, and is visible
%%% there within milliseconds. A node that joins (or comes back) catches up by comparing digests
%%% of the id sets with each peer and exchanging only what differs; the same anti-entropy runs
%%% every `kb_sync_interval_ms' (default 10 s) with a random peer, repairing anything lost.
-module(autonomic_kb).

-export([
    record/1,
    similar/1,
    similar/2,
    recommend/1,
    recommend/2,
    success_rate/1,
    effectiveness/1,
    size/0,
    get/1,
    export/1,
    import/1,
    clear/0,
    flush/0,
    sync/0,
    info/0,
    strategies/0
]).

-export_type([
    id/0,
    label/0,
    strategy/0,
    failure/0,
    new_failure/0,
    search_options/0,
    effectiveness/0,
    success_rate/0,
    recommendation/0
]).

-type id() :: binary().
%% 1 to 128 bytes of UTF-8.
-type label() :: atom() | binary().
-type strategy() ::
    supervisor_restart
    | quorum_reconfiguration
    | backend_failover
    | load_shedding
    | graceful_degradation
    | throttle
    | pause
    | escalate.
-type failure() :: #{
    id := id(),
    failure_type := label(),
    root_cause := label(),
    symptoms := [binary()],
    strategy := strategy(),
    recovery_ms := non_neg_integer() | float(),
    success := boolean(),
    timestamp := non_neg_integer()
}.
-type new_failure() :: #{
    failure_type := label(),
    root_cause := label(),
    symptoms := [binary()],
    strategy := strategy(),
    recovery_ms := non_neg_integer() | float(),
    success := boolean(),
    id => id(),
    timestamp => non_neg_integer()
}.
-type search_options() :: #{threshold => number(), limit => pos_integer()}.
%% `threshold' in 0..1 (default 0.7): the least Jaccard similarity returned; `limit' (default
%% 10): the most results returned.
-type effectiveness() :: #{
    successes := non_neg_integer(),
    failures := non_neg_integer(),
    rate := float() | undefined,
    mean_recovery_ms := float() | undefined,
    p95_recovery_ms := float() | undefined
}.
%% `rate' is successes / (successes + failures); the recovery times are over the successful
%% recoveries (nearest-rank 95th percentile); `undefined' when there is nothing to compute from.
-type success_rate() :: #{
    successes := non_neg_integer(),
    failures := non_neg_integer(),
    rate := float() | undefined
}.
-type recommendation() :: #{
    strategy := strategy(),
    score := float(),
    weight := float(),
    successes := non_neg_integer(),
    failures := non_neg_integer()
}.
%% `score' = (1 + S) / (2 + W), the posterior mean success probability under a Beta(1,1) prior,
%% where W sums the similarity of the matching records with this strategy and S the similarity of
%% those that succeeded. `successes' and `failures' count those records.

-define(HANDLE, {autonomic_kb, handle}).
-define(SERVER, autonomic_kb_server).
-define(DEFAULT_THRESHOLD, 0.7).
-define(DEFAULT_LIMIT, 10).
-define(MAX_LIMIT, 16#FFFFFFFF).
-define(STRATEGIES, [backend_failover, escalate, graceful_degradation, load_shedding, pause,
                     quorum_reconfiguration, supervisor_restart, throttle]).

%%% Writes (through the owner process)

%% @doc Records a failure (see the module documentation for the keys); returns its id.
%%
%% Errors, none of which changes anything:
%% <ul>
%%   <li>`{invalid_failure, not_a_map | {missing, Key} | {unknown_key, Key} | {invalid, Key, Value}}'
%%       (an unknown strategy is `{invalid, strategy, S}');</li>
%%   <li>`{duplicate_id, Id}': a different record has this id;</li>
%%   <li>`{too_old, Timestamp}': the record would not be kept (older than the retention, than the
%%       last clear, or than every record of a full base);</li>
%%   <li>`{too_new, Timestamp}': more than 60 s ahead of this node's clock;</li>
%%   <li>`timeout': the owner did not answer within 5 s (busy with an import); the record may
%%       or may not have been added;</li>
%%   <li>`not_running': the application is not started.</li>
%% </ul>
-spec record(new_failure()) -> {ok, id()} | {error, term()}.
record(Failure) when is_map(Failure) ->
    call({record, Failure}, 5000);
record(_Other) ->
    {error, {invalid_failure, not_a_map}}.

%% @doc Adds the records of a JSON file written by {@link export/1} (a union: records already
%% present are skipped, the bounds apply) and shares them with the cluster. The file is parsed
%% and checked as a whole first: a damaged file is refused with `{invalid_file, Why}' and
%% nothing changes. Returns counts: `offered' (distinct records in the file), `added',
%% `duplicates' and `rejected' (outside the bounds, or conflicting with a record of the same id).
-spec import(file:name_all()) ->
    {ok, #{offered := non_neg_integer(), added := non_neg_integer(),
           duplicates := non_neg_integer(), rejected := non_neg_integer()}}
    | {error, term()}.
import(File) ->
    case path(File) of
        {ok, Path} -> call({import, Path}, infinity);
        Error -> Error
    end.

%% @doc Empties the knowledge base of every connected node: each removes the records stamped at
%% or before now and refuses them from then on (only records stamped in the future, at most 60 s
%% ahead by a skewed clock, survive). The clear carries an epoch, so a node that was away when it
%% happened adopts it when it reconnects, instead of bringing the old records back.
-spec clear() -> ok | {error, term()}.
clear() ->
    call(clear, infinity).

%% @doc Writes what was recorded to disk now, instead of at the next flush interval.
-spec flush() -> ok | {error, term()}.
flush() ->
    call(flush, infinity).

%% @doc Starts an anti-entropy round with every connected node now (asynchronous).
-spec sync() -> ok | {error, not_running}.
sync() ->
    call(sync, 5000).

%%% Reads (straight to the NIF)

%% @equiv similar(Symptoms, #{})
-spec similar([binary()]) -> [{float(), failure()}] | {error, term()}.
similar(Symptoms) ->
    similar(Symptoms, #{}).

%% @doc The recorded failures whose symptom set is most similar to `Symptoms' (Jaccard
%% similarity: shared symptoms over all symptoms of the two; two empty sets have similarity 1),
%% at least `threshold', best first; ties go to the newer failure, then to the smaller id.
%% Errors: `{invalid_symptoms, S}', `{invalid_threshold, T}', `{invalid_limit, L}',
%% `{unknown_option, K}', `{invalid_options, O}', `not_running'.
-spec similar([binary()], search_options()) -> [{float(), failure()}] | {error, term()}.
similar(Symptoms, Opts) ->
    case search_options(Opts, [threshold, limit]) of
        {ok, T, L} ->
            with_handle(fun(H) ->
                scheduled(autonomic_nif:kb_similar(H, Symptoms, T, L),
                          fun() -> autonomic_nif:kb_similar_dirty(H, Symptoms, T, L) end)
            end);
        Error ->
            Error
    end.

%% @equiv recommend(Symptoms, #{})
-spec recommend([binary()]) -> [recommendation()] | {error, term()}.
recommend(Symptoms) ->
    recommend(Symptoms, #{}).

%% @doc The strategies used on the failures similar to `Symptoms' (at least `threshold',
%% default 0.7), best first: by {@type recommendation()} `score', then by `weight', then by name.
%% A strategy seen once is not trusted like one seen a hundred times: one success on an
%% identical failure scores 2/3, a hundred scores 101/102. Empty when nothing is similar.
-spec recommend([binary()], #{threshold => number()}) -> [recommendation()] | {error, term()}.
recommend(Symptoms, Opts) ->
    case search_options(Opts, [threshold]) of
        {ok, T, _} ->
            with_handle(fun(H) ->
                scheduled(autonomic_nif:kb_recommend(H, Symptoms, T),
                          fun() -> autonomic_nif:kb_recommend_dirty(H, Symptoms, T) end)
            end);
        Error ->
            Error
    end.

%% @doc Successes and failures of the recorded recoveries of a failure type (an atom and a binary
%% with the same text are different types). `{error, {invalid_failure_type, T}}' for anything
%% that is not an atom or a UTF-8 binary.
-spec success_rate(label()) -> success_rate() | {error, term()}.
success_rate(FailureType) ->
    with_handle(fun(H) -> autonomic_nif:kb_success_rate(H, FailureType) end).

%% @doc How a strategy has fared, or every strategy (`all': a map with all eight).
%% `{error, {unknown_strategy, S}}' for anything else.
-spec effectiveness(strategy() | all) ->
    effectiveness() | #{strategy() => effectiveness()} | {error, term()}.
effectiveness(Which) ->
    with_handle(fun(H) ->
        scheduled(autonomic_nif:kb_effectiveness(H, Which),
                  fun() -> autonomic_nif:kb_effectiveness_dirty(H, Which) end)
    end).

%% @doc Number of records on this node.
-spec size() -> non_neg_integer() | {error, not_running}.
size() ->
    with_handle(fun autonomic_nif:kb_size/1).

%% @doc The record with this id.
-spec get(id()) -> {ok, failure()} | {error, not_found | not_running | term()}.
get(Id) ->
    with_handle(fun(H) -> autonomic_nif:kb_get(H, Id) end).

%% @doc Writes every record of this node to a JSON file (atomically: a temporary file renamed
%% over `File'); returns how many. Reading it back with {@link import/1} gives the same records,
%% floats bit for bit; exporting again gives the same bytes. Runs in the caller, on a dirty I/O
%% scheduler. Errors: `{file_error, Op, Path, Why}', `{invalid_path, P}', `not_running'.
-spec export(file:name_all()) -> {ok, non_neg_integer()} | {error, term()}.
export(File) ->
    case path(File) of
        {ok, Path} -> with_handle(fun(H) -> autonomic_nif:kb_export(H, Path) end);
        Error -> Error
    end.

%% @doc Figures of this node's knowledge base: the NIF's counters (records, limits, symptoms,
%% evictions, pending and logged lines, queries) and the owner's (data directory, flush
%% interval, what was loaded at start, peers).
-spec info() -> map() | {error, not_running}.
info() ->
    call(info, 5000).

%% @doc The strategies a failure may record (DESIGN.md section 3).
-spec strategies() -> [strategy()].
strategies() ->
    ?STRATEGIES.

%%% Internal

%% The owner being down or busy (an import of a large file) is an error for the caller, never a
%% crash: gen_server calls use aliases (OTP 24+), so a late reply is dropped, not left behind.
call(Request, Timeout) ->
    try
        gen_server:call(?SERVER, Request, Timeout)
    catch
        exit:{noproc, _} -> {error, not_running};
        exit:{shutdown, _} -> {error, not_running};
        exit:{{shutdown, _}, _} -> {error, not_running};
        exit:{timeout, _} -> {error, timeout}
    end.

with_handle(Fun) ->
    case persistent_term:get(?HANDLE, undefined) of
        undefined -> {error, not_running};
        H -> Fun(H)
    end.

%% Runs the dirty variant when the NIF found the work too big for a normal scheduler.
scheduled(dirty, Dirty) -> Dirty();
scheduled(Result, _Dirty) -> Result.

search_options(Opts, Allowed) when is_map(Opts) ->
    case [K || K <- maps:keys(Opts), not lists:member(K, Allowed)] of
        [] ->
            T = maps:get(threshold, Opts, ?DEFAULT_THRESHOLD),
            L = case maps:get(limit, Opts, ?DEFAULT_LIMIT) of
                %% Any positive integer is a valid limit; beyond 32 bits it changes nothing.
                Big when is_integer(Big), Big > ?MAX_LIMIT -> ?MAX_LIMIT;
                Limit -> Limit
            end,
            {ok, T, L};
        [K | _] ->
            {error, {unknown_option, K}}
    end;
search_options(Opts, _Allowed) ->
    {error, {invalid_options, Opts}}.

path(Empty) when Empty =:= []; Empty =:= <<>> ->
    {error, {invalid_path, Empty}};
path(File) ->
    try filename:absname(File) of
        %% A binary is a raw file name: passed as is.
        Bin when is_binary(Bin), byte_size(Bin) > 0 -> {ok, Bin};
        Name ->
            case unicode:characters_to_binary(Name) of
                Bin when is_binary(Bin), byte_size(Bin) > 0 -> {ok, Bin};
                _ -> {error, {invalid_path, File}}
            end
    catch
        error:_ -> {error, {invalid_path, File}}
    end.

