%%% @doc The tamper-evident, durable ledger: every decision and action of the self-healing loop
%%% is appended here as a receipt in a SHA-256 hash chain, with an RFC 6962 Merkle tree over the
%%% receipts so that any receipt can be proven present, and any two sizes of the ledger proven
%%% consistent, to an auditor who only has {@link autonomic_ledger_verify} and `crypto'.
%%%
%%% ```
%%% 1> {ok, R} = autonomic_ledger:append(<<"restart_child">>, <<"db_pool: ok in 41 ms">>).
%%% 2> maps:with([seq, id], R).
%%% #{id => <<"0190f0a1-b2c3-7000-8a1e-5c0ffee0c0de">>,seq => 0}
%%% 3> {ok, Proof} = autonomic_ledger:inclusion_proof(0).
%%% 4> autonomic_ledger_verify:inclusion(R, Proof).
%%% ok
%%% '''
%%%
%%% Receipts are `#{seq, id, timestamp, action, result, prev_hash, hash}': `seq' counts from 0,
%%% `id' is a UUIDv7 in text form (time-ordered, unique across nodes), `timestamp' is in
%%% microseconds since the Unix epoch, and `hash' is the SHA-256 of the canonical encoding of
%%% seq, id, prev_hash, timestamp, action and result ({@link autonomic_ledger_verify:receipt_hash/1});
%%% the first receipt's `prev_hash' is 32 zero bytes.
%%%
%%% Durability: {@link append/3} returns `{ok, Receipt}' only after the record is written and
%%% `fdatasync'ed: with `fsync => always' by an fsync of its own, with `{group_commit, Ms}' by an
%%% fsync shared with the appends queued at the same time (at most one fsync per `Ms'
%%% milliseconds; `0' adds no delay, appends that arrive during an fsync share the next one).
%%% After a crash, every acknowledged receipt is there: a torn last record is cut off and logged
%%% when the ledger is opened. A record changed on disk is named by {@link verify/1}.
%%%
%%% A ledger is opened by a process, which owns it: it closes on {@link close/1} or when the owner
%%% exits. Any process may use the handle, or the ledger's name. The application opens the default
%%% ledger `audit' (owned by `autonomic_ledger_owner'); the functions without a ledger argument
%%% use it.
%%%
%%% Nothing here runs file I/O on the caller's scheduler: appends are queued for the ledger's own
%%% writer thread and the caller waits for its reply message; opening, closing, verify, `get',
%%% `tail' and `by_action' run on dirty I/O schedulers; sizes, roots and proofs take microseconds.
%%% Bad input returns `{error, Reason}' and changes nothing.
-module(autonomic_ledger).

-compile({no_auto_import, [get/1, size/1]}).

-export([open/2, close/1]).
-export([append/2, append/3]).
-export([verify/0, verify/1]).
-export([get/1, get/2, tail/1, tail/2, by_action/1, by_action/2]).
-export([size/0, size/1, root/0, root/1]).
-export([inclusion_proof/1, inclusion_proof/2, consistency_proof/1, consistency_proof/2]).
-export([info/1, list/0, default/0, default_fsync/0, metrics/0]).

-export_type([handle/0, ledger/0, receipt/0, fsync/0, options/0, inclusion_proof/0,
              consistency_proof/0, error_reason/0]).

-define(DEFAULT, audit).
-define(DEFAULT_FSYNC, {group_commit, 0}).
-define(LOG, #{domain => [autonomic, ledger]}).

-opaque handle() :: reference().
%% An open ledger (a NIF resource).

-type ledger() :: handle() | atom().
%% A handle, or the name the ledger was opened under.

-type hash() :: <<_:256>>.

-type receipt() :: #{
    seq := non_neg_integer(),
    id := binary(),
    timestamp := integer(),
    action := binary(),
    result := binary(),
    prev_hash := hash(),
    hash := hash()
}.

-type fsync() :: always | {group_commit, Ms :: 0..60000}.

-type options() :: #{dir := file:filename_all(), fsync => fsync()}.

-type inclusion_proof() :: #{seq := non_neg_integer(), size := pos_integer(), root := hash(), path := [hash()]}.

-type consistency_proof() :: #{
    old_size := pos_integer(),
    size := pos_integer(),
    old_root := hash(),
    root := hash(),
    path := [hash()]
}.

-type error_reason() ::
    closed
    | failed
    | overloaded
    | not_found
    | invalid_id
    | {unknown_ledger, term()}
    | {not_binary, action | result}
    | {payload_too_large, Bytes :: non_neg_integer(), Max :: non_neg_integer()}
    | {no_such_record, Seq :: non_neg_integer(), Size :: non_neg_integer()}
    | {bad_old_size, Old :: non_neg_integer(), Size :: non_neg_integer()}
    | {invalid_count | invalid_seq | invalid_size, term()}
    | {io_error, Op :: atom(), Path :: binary(), Reason :: atom() | binary()}
    | {unreadable, Path :: binary(), Offset :: non_neg_integer()}
    | {internal, term()}.
%% `failed': an earlier write or fsync failed; the ledger refuses appends until it is reopened
%% (after a failed fsync the page cache can no longer be trusted).

%%% Opening and closing

%% @doc Opens (creating it if needed) the ledger in `dir' under the name `Name', for the calling
%% process. Recovery runs first: a torn last record is cut off and logged as a warning.
%%
%% `fsync' defaults to `{group_commit, 0}' (see the module documentation). Errors:
%% `{invalid_name, Name}', `{invalid_options, Opts}', `{missing_option, dir}',
%% `{unknown_option, Key}', `{invalid_dir, Dir}', `{invalid_fsync, F}',
%% `{already_open, Dir}' (this node has it open), `{name_in_use, Name}',
%% `{locked, Dir}' (another OS process has it open), `{corrupt, #{segment, offset, seq, what}}'
%% (damage a crash cannot cause; open refuses rather than guess), `{io_error, Op, Path, Reason}'.
-spec open(atom(), options()) -> {ok, handle()} | {error, term()}.
open(Name, _Opts) when not is_atom(Name) ->
    {error, {invalid_name, Name}};
open(_Name, Opts) when not is_map(Opts) ->
    {error, {invalid_options, Opts}};
open(Name, Opts) ->
    case maps:keys(maps:without([dir, fsync], Opts)) of
        [Key | _] ->
            {error, {unknown_option, Key}};
        [] ->
            case Opts of
                #{dir := Dir} ->
                    case dir_binary(Dir) of
                        {ok, DirBin} -> open_dir(Name, Dir, DirBin, maps:get(fsync, Opts, ?DEFAULT_FSYNC));
                        error -> {error, {invalid_dir, Dir}}
                    end;
                #{} ->
                    {error, {missing_option, dir}}
            end
    end.

open_dir(Name, Given, Dir, Fsync) ->
    T0 = erlang:monotonic_time(),
    case autonomic_nif:ledger_open(Name, Dir, Fsync) of
        {ok, Handle, Report} ->
            Ms = erlang:convert_time_unit(erlang:monotonic_time() - T0, native, millisecond),
            log_open(Name, Dir, Fsync, Report, Ms),
            {ok, Handle};
        {error, {invalid_dir, _}} ->
            {error, {invalid_dir, Given}};
        {error, _} = Error ->
            Error
    end.

%% @doc Closes a ledger: refuses new appends, waits until those already queued are durable and
%% answered, and closes its files.
-spec close(ledger()) -> ok | {error, term()}.
close(Ledger) ->
    autonomic_nif:ledger_close(Ledger).

%%% Appending

%% @doc Appends to the default ledger (`audit'); see {@link append/3}.
-spec append(binary(), binary()) -> {ok, receipt()} | {error, term()}.
append(Action, Result) ->
    append(?DEFAULT, Action, Result).

%% @doc Appends a receipt of `Action' and its `Result' (binaries, at most 1 MiB together) and
%% returns it once it is durable. Many processes may append at once; each waits for its own
%% receipt without blocking a scheduler.
-spec append(ledger(), binary(), binary()) -> {ok, receipt()} | {error, term()}.
append(Ledger, Action, Result) ->
    Ref = make_ref(),
    case autonomic_nif:ledger_append(Ledger, Action, Result, Ref) of
        ok ->
            %% The writer thread answers every accepted append exactly once, after its fsync (or
            %% with the error that prevented it), also when the ledger closes meanwhile. It sends
            %% only what the caller does not hold already.
            receive
                {Ref, {ok, Seq, Timestamp, <<Id:36/binary, PrevHash:32/binary, Hash:32/binary>>}} ->
                    {ok, #{seq => Seq, id => Id, timestamp => Timestamp, action => Action,
                           result => Result, prev_hash => PrevHash, hash => Hash}};
                {Ref, {error, _} = Error} ->
                    Error
            end;
        {error, _} = Error ->
            Error
    end.

%%% Verifying

%% @doc Verifies the default ledger; see {@link verify/1}.
-spec verify() -> ok | {error, term()}.
verify() ->
    verify(?DEFAULT).

%% @doc Re-reads every record from disk and checks the chain: each record's frame, that its
%% `seq' is its position, that `prev_hash' is the previous record's hash, that its hash is the
%% SHA-256 of its fields, and that it is the hash the ledger served in roots and proofs. Returns
%% `{error, {chain_broken, Seq}}' naming the first record that fails, also logged with the
%% reason, counted in `autonomic_ledger_verifications_total' and published as the event
%% `ledger_chain_broken'. Runs on a dirty I/O scheduler (about a second per million records).
-spec verify(ledger()) -> ok | {error, {chain_broken, non_neg_integer()} | term()}.
verify(Ledger) ->
    T0 = erlang:monotonic_time(),
    Outcome = autonomic_nif:ledger_verify(Ledger),
    Seconds = erlang:convert_time_unit(erlang:monotonic_time() - T0, native, microsecond) / 1.0e6,
    case Outcome of
        ok ->
            count_verify(Ledger, ok),
            logger:info("ledger ~p verified in ~.3f s", [name(Ledger), Seconds], ?LOG),
            ok;
        {error, {chain_broken, Seq, Problem}} ->
            count_verify(Ledger, broken),
            Name = name(Ledger),
            Detail = #{ledger => Name, seq => Seq, problem => Problem, dir => dir(Ledger)},
            logger:error("ledger ~p: chain broken at record ~b (~p)", [Name, Seq, Problem],
                         ?LOG#{ledger => Name, seq => Seq, problem => Problem}),
            publish(ledger_chain_broken, Detail),
            {error, {chain_broken, Seq}};
        {error, Reason} = Error ->
            count_verify(Ledger, error),
            logger:warning("ledger ~p: verify failed: ~p", [name(Ledger), Reason], ?LOG),
            Error
    end.

%%% Reading

%% @doc The receipt with id `Id' in the default ledger.
-spec get(binary()) -> {ok, receipt()} | {error, term()}.
get(Id) ->
    get(?DEFAULT, Id).

%% @doc The receipt with id `Id' (the 36-character text form), or `{error, not_found}'.
-spec get(ledger(), binary()) -> {ok, receipt()} | {error, term()}.
get(Ledger, Id) ->
    autonomic_nif:ledger_get(Ledger, Id).

%% @doc The last `N' receipts of the default ledger.
-spec tail(non_neg_integer()) -> {ok, [receipt()]} | {error, term()}.
tail(N) ->
    tail(?DEFAULT, N).

%% @doc The last `N' receipts (fewer when the ledger is shorter), oldest first.
-spec tail(ledger(), non_neg_integer()) -> {ok, [receipt()]} | {error, term()}.
tail(Ledger, N) ->
    autonomic_nif:ledger_tail(Ledger, N).

%% @doc The receipts of the default ledger whose action is `Action'.
-spec by_action(binary()) -> {ok, [receipt()]} | {error, term()}.
by_action(Action) ->
    by_action(?DEFAULT, Action).

%% @doc Every receipt whose action is `Action', oldest first.
-spec by_action(ledger(), binary()) -> {ok, [receipt()]} | {error, term()}.
by_action(Ledger, Action) ->
    autonomic_nif:ledger_by_action(Ledger, Action).

%% @doc The number of receipts in the default ledger.
-spec size() -> non_neg_integer() | {error, term()}.
size() ->
    size(?DEFAULT).

%% @doc The number of (durable) receipts.
-spec size(ledger()) -> non_neg_integer() | {error, term()}.
size(Ledger) ->
    autonomic_nif:ledger_size(Ledger).

%% @doc Size and Merkle root of the default ledger.
-spec root() -> {non_neg_integer(), hash()} | {error, term()}.
root() ->
    root(?DEFAULT).

%% @doc `{Size, RootHash}': the RFC 6962 Merkle tree hash of the receipt hashes (the SHA-256 of
%% nothing for an empty ledger). An auditor keeps these and later asks for a consistency proof.
-spec root(ledger()) -> {non_neg_integer(), hash()} | {error, term()}.
root(Ledger) ->
    autonomic_nif:ledger_root(Ledger).

%%% Proofs

%% @doc Inclusion proof of receipt `Seq' of the default ledger.
-spec inclusion_proof(non_neg_integer()) -> {ok, inclusion_proof()} | {error, term()}.
inclusion_proof(Seq) ->
    inclusion_proof(?DEFAULT, Seq).

%% @doc The RFC 6962 audit path of receipt `Seq' in the ledger at its current `size', whose
%% root is `root'. Check it with {@link autonomic_ledger_verify:inclusion/2}.
-spec inclusion_proof(ledger(), non_neg_integer()) -> {ok, inclusion_proof()} | {error, term()}.
inclusion_proof(Ledger, Seq) ->
    autonomic_nif:ledger_inclusion_proof(Ledger, Seq).

%% @doc Consistency proof of the default ledger from `OldSize'.
-spec consistency_proof(pos_integer()) -> {ok, consistency_proof()} | {error, term()}.
consistency_proof(OldSize) ->
    consistency_proof(?DEFAULT, OldSize).

%% @doc The RFC 6962 proof that the ledger at `OldSize' receipts (root `old_root') is a prefix
%% of the ledger now (`size', `root'); `0 < OldSize =< size'. Check it with
%% {@link autonomic_ledger_verify:consistency/1}, and compare `old_root' with the root you kept.
-spec consistency_proof(ledger(), pos_integer()) -> {ok, consistency_proof()} | {error, term()}.
consistency_proof(Ledger, OldSize) ->
    autonomic_nif:ledger_consistency_proof(Ledger, OldSize).

%%% Introspection

%% @doc Name, directory, fsync policy, size and counters of an open ledger: `appends',
%% `append_errors', `fsyncs', `fsync_seconds', `bytes_written' and `batches' (written batches
%% by size class, one fsync each).
-spec info(ledger()) -> {ok, map()} | {error, term()}.
info(Ledger) ->
    autonomic_nif:ledger_info(Ledger).

%% @doc The ledgers open on this node, by name.
-spec list() -> [{atom(), handle()}].
list() ->
    autonomic_nif:ledger_list().

%% @doc The name of the default ledger.
-spec default() -> audit.
default() ->
    ?DEFAULT.

%% @doc The fsync policy used when `open/2' is given none, and by the default ledger unless the
%% application environment sets `ledger_fsync'.
-spec default_fsync() -> fsync().
default_fsync() ->
    ?DEFAULT_FSYNC.

%% @doc Scrape-time metrics of every open ledger (registered as a collector by
%% `autonomic_ledger_owner').
-spec metrics() -> [{atom(), counter | gauge, iodata(), [{map(), number()}]}].
metrics() ->
    Infos = [I || {_, L} <- list(), {ok, I} <- [info(L)]],
    Per = fun(Key) -> [{#{ledger => N}, maps:get(Key, I)} || I = #{name := N} <- Infos] end,
    [
        {autonomic_ledger_records, gauge, "Receipts in the ledger.", Per(size)},
        {autonomic_ledger_appends_total, counter, "Receipts appended and acknowledged since open.", Per(appends)},
        {autonomic_ledger_append_errors_total, counter, "Appends that failed on an I/O error since open.",
            Per(append_errors)},
        {autonomic_ledger_fsyncs_total, counter, "fdatasync calls since open.", Per(fsyncs)},
        {autonomic_ledger_fsync_seconds_total, counter, "Time spent in fdatasync since open.", Per(fsync_seconds)},
        {autonomic_ledger_bytes_written_total, counter, "Bytes written to segment files since open.",
            Per(bytes_written)},
        {autonomic_ledger_batches_total, counter,
            "Written batches (one write and one fsync each) by number of receipts.",
            [{#{ledger => N, size => Class}, C} || #{name := N, batches := B} <- Infos, {Class, C} <- B]}
    ].

%%% Internal

%% A directory is a non-empty binary or flat string (file:filename_all() also allows deep lists
%% of atoms, which filename functions flatten into surprising names: refused here).
dir_binary(Dir) when is_binary(Dir), byte_size(Dir) > 0 ->
    {ok, filename:absname(Dir)};
dir_binary([_ | _] = Dir) ->
    case io_lib:char_list(Dir) of
        true ->
            case unicode:characters_to_binary(filename:absname(Dir), unicode, file:native_name_encoding()) of
                Bin when is_binary(Bin) -> {ok, Bin};
                _ -> error
            end;
        false ->
            error
    end;
dir_binary(_) ->
    error.

log_open(Name, Dir, Fsync, #{records := N, truncated := Truncated, removed_temp_files := Tmp}, Ms) ->
    case Truncated of
        none ->
            ok;
        #{segment := Seg, offset := Off, bytes := Bytes, zero_fill := Zero} ->
            logger:warning(
                "ledger ~p: torn last record cut off: ~b ~s bytes at offset ~b of ~ts "
                "(an append interrupted by a crash; it was never acknowledged)",
                [Name, Bytes, case Zero of true -> "zero"; false -> "partial" end, Off, Seg],
                ?LOG#{ledger => Name, segment => Seg, offset => Off, bytes => Bytes})
    end,
    Tmp > 0 andalso
        logger:notice("ledger ~p: removed ~b unfinished segment file(s)", [Name, Tmp], ?LOG),
    logger:info("ledger ~p opened in ~ts with ~b receipts in ~b ms (fsync ~p)", [Name, Dir, N, Ms, Fsync],
                ?LOG),
    ok.

name(Ledger) when is_atom(Ledger) -> Ledger;
name(Ledger) ->
    case info(Ledger) of
        {ok, #{name := Name}} -> Name;
        {error, _} -> undefined
    end.

dir(Ledger) ->
    case info(Ledger) of
        {ok, #{dir := Dir}} -> Dir;
        {error, _} -> undefined
    end.

%% Metrics and events are recorded when the application runs (its metrics table and event bus
%% exist); a ledger used without it works the same, unobserved.
count_verify(Ledger, Result) ->
    case ets:whereis(autonomic_metrics) of
        undefined -> ok;
        _ -> autonomic_metrics:inc(autonomic_ledger_verifications_total, #{ledger => name(Ledger), result => Result})
    end.

publish(Type, Detail) ->
    case whereis(autonomic_events:scope()) of
        undefined -> ok;
        _ -> _ = autonomic_events:publish(Type, Detail), ok
    end.
