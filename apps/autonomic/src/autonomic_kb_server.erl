%%% @doc The owner of the node's knowledge base: opens it from disk, makes writes durable, and
%%% shares them with the other nodes. Reads never come here (they call the NIF directly).
%%%
%%% <h3>Persistence</h3>
%%% The NIF keeps the lines of new records in a pending buffer. A linked flusher process appends
%%% them to the log and fdatasyncs every `kb_flush_ms' (the NIF writes a snapshot instead when
%%% the log has grown to the history limit), so this process never waits for the disk on a
%%% `record/1'. With `kb_flush_ms' 0, each record is flushed before `record/1' returns. A clean
%%% stop flushes. If a previous owner crashed, its handle's pending records are flushed before
%%% the base is reopened, so an owner crash loses nothing.
%%%
%%% <h3>Cluster protocol</h3>
%%% Owners are the members of the `pg' group `owners' in the scope `autonomic_kb_scope'. Every
%%% message is `{autonomic_kb, 1, Type, FromPid, Epoch, Payload}', sent with `noconnect' and
%%% `nosuspend' (a slow peer never blocks this process; a message it misses is repaired by
%%% anti-entropy) and carrying the sender's epoch (the last clear): a receiver with a lower epoch
%%% adopts it first, one with a higher epoch answers with an `epoch' message.
%%% <ul>
%%%   <li>`records', lines: a record just added here (`record/1', `import/1'), sent to every
%%%       owner at once;</li>
%%%   <li>`digest', binary: the digest of our ids (1024 buckets); the peer answers `ids' with
%%%       the buckets that differ and its ids in them (nothing when equal);</li>
%%%   <li>`ids', `{Buckets, Ids}': we send `catchup' lines with our records in those buckets that
%%%       the peer lacks, and `want' with the ids we lack; the peer answers `want' with
%%%       `catchup' lines;</li>
%%%   <li>`epoch', `none': the sender's epoch, to adopt if higher.</li>
%%% </ul>
%%% A round starts when an owner joins the group (the one on the node with the smaller name
%%% starts it, so a pair syncs once), on {@link autonomic_kb:sync/0}, and every
%%% `kb_sync_interval_ms' with one random peer. Its cost is proportional to the difference.
-module(autonomic_kb_server).
-behaviour(gen_server).

-export([start_link/0, scope/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(SCOPE, autonomic_kb_scope).
-define(GROUP, owners).
-define(HANDLE, {autonomic_kb, handle}).
-define(TAG, autonomic_kb).
-define(PROTO, 1).
-define(LOG, #{domain => [autonomic, kb]}).
%% Retention is applied at least this often.
-define(MAX_PRUNE_MS, 60000).

-type state() :: #{
    handle := autonomic_nif:kb_handle(),
    dir := file:filename(),
    epoch := integer(),
    flush_ms := non_neg_integer(),
    sync_ms := pos_integer(),
    prune_ms := pos_integer(),
    flusher := pid() | undefined,
    pg_ref := reference(),
    resync := #{pid() => true},
    loaded := map()
}.

%% @doc Starts the owner (from `autonomic_kb_sup', after the `pg' scope).
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc The `pg' scope of the owners.
-spec scope() -> atom().
scope() -> ?SCOPE.

%%% gen_server

%% @private
-spec init([]) -> {ok, state()} | {stop, term()}.
init([]) ->
    process_flag(trap_exit, true),
    case config() of
        {ok, Config} -> open(Config);
        {error, Reason} -> {stop, Reason}
    end.

%% @private
-spec handle_call(term(), gen_server:from(), state()) -> {reply, term(), state()}.
handle_call({record, Failure}, _From, #{handle := H} = State) ->
    Now = now_ms(),
    case insert(H, defaults(Failure, Now, State), Now) of
        {added, Id, Line} ->
            State1 = broadcast(records, Line, State),
            autonomic_metrics:inc(autonomic_knowledge_recorded_total, #{origin => local}),
            ok = maybe_flush_now(State1),
            {reply, {ok, Id}, State1};
        {duplicate, Id} ->
            {reply, {ok, Id}, State};
        {error, _} = Error ->
            {reply, Error, State}
    end;
handle_call({import, Path}, _From, #{handle := H} = State) ->
    case autonomic_nif:kb_import(H, Path, now_ms()) of
        {ok, Report, Chunks} ->
            State1 = lists:foldl(fun(C, S) -> broadcast(records, C, S) end, State, Chunks),
            autonomic_metrics:inc(autonomic_knowledge_recorded_total, #{origin => import}, maps:get(added, Report)),
            ok = maybe_flush_now(State1),
            _ = autonomic_events:publish(kb_imported, Report#{file => Path}),
            logger:info("knowledge base: imported ~ts: ~p", [Path, Report], ?LOG),
            {reply, {ok, Report}, State1};
        {error, _} = Error ->
            {reply, Error, State}
    end;
handle_call(clear, _From, #{handle := H} = State) ->
    case autonomic_nif:kb_clear(H, now_ms()) of
        {ok, Epoch} ->
            State1 = broadcast(epoch, none, State#{epoch := Epoch}),
            _ = autonomic_events:publish(kb_cleared, #{epoch => Epoch, origin => node()}),
            logger:notice("knowledge base cleared (epoch ~b)", [Epoch], ?LOG),
            {reply, ok, State1};
        {error, _} = Error ->
            {reply, Error, State}
    end;
handle_call(flush, _From, #{handle := H} = State) ->
    Reply = case autonomic_nif:kb_flush(H) of
        {ok, _} -> ok;
        Error -> Error
    end,
    {reply, Reply, State};
handle_call(sync, _From, State) ->
    {reply, ok, lists:foldl(fun start_round/2, State, peers())};
handle_call(info, _From, #{handle := H} = State) ->
    Own = maps:with([dir, epoch, flush_ms, sync_ms, loaded], State),
    {reply, maps:merge(autonomic_nif:kb_info(H), Own#{peers => lists:sort([node(P) || P <- peers()])}), State};
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast(term(), state()) -> {noreply, state()}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), state()) -> {noreply, state()} | {stop, term(), state()}.
handle_info({?TAG, ?PROTO, Type, From, Epoch, Payload}, State) when is_pid(From), is_integer(Epoch) ->
    State1 = reconcile_epoch(From, Epoch, State),
    {noreply, peer_message(Type, From, Payload, State1)};
handle_info({?TAG, Version, _Type, From, _Epoch, _Payload}, State) ->
    logger:warning("knowledge base: ignoring protocol ~p from ~p", [Version, From], ?LOG),
    {noreply, State};
handle_info({Ref, join, ?GROUP, Pids}, #{pg_ref := Ref} = State) ->
    %% Of each pair of nodes, the one with the smaller name starts the catch-up.
    New = [P || P <- Pids, node(P) =/= node(), node() < node(P)],
    {noreply, lists:foldl(fun start_round/2, State, New)};
handle_info({Ref, leave, ?GROUP, _Pids}, #{pg_ref := Ref} = State) ->
    {noreply, State};
handle_info(anti_entropy, #{sync_ms := Ms, resync := Resync} = State) ->
    erlang:send_after(Ms, self(), anti_entropy),
    Peers = peers(),
    Random = case Peers of
        [] -> [];
        _ -> [lists:nth(rand:uniform(length(Peers)), Peers)]
    end,
    Targets = lists:usort(Random ++ [P || P <- maps:keys(Resync), lists:member(P, Peers)]),
    {noreply, lists:foldl(fun start_round/2, State#{resync := #{}}, Targets)};
handle_info(prune, #{handle := H, prune_ms := Ms} = State) ->
    erlang:send_after(Ms, self(), prune),
    case autonomic_nif:kb_prune(H, now_ms()) of
        {ok, 0} -> ok;
        {ok, N} -> logger:info("knowledge base: ~b records past retention removed", [N], ?LOG)
    end,
    {noreply, State};
handle_info({'EXIT', Flusher, Reason}, #{flusher := Flusher, handle := H, flush_ms := Ms} = State) ->
    logger:error("knowledge base flusher exited: ~p; restarting it", [Reason], ?LOG),
    {noreply, State#{flusher := start_flusher(H, Ms)}};
handle_info({'EXIT', _Parent, Reason}, State) ->
    {stop, Reason, State};
handle_info(Other, State) ->
    logger:debug("knowledge base: unexpected message ~p", [Other], ?LOG),
    {noreply, State}.

%% @private
-spec terminate(term(), state()) -> ok.
terminate(_Reason, #{handle := H, flusher := Flusher}) ->
    case Flusher of
        undefined -> ok;
        _ -> unlink(Flusher), exit(Flusher, kill)
    end,
    case autonomic_nif:kb_flush(H) of
        {ok, _} -> ok;
        {error, Why} -> logger:error("knowledge base: final flush failed: ~p", [Why], ?LOG)
    end,
    _ = persistent_term:erase(?HANDLE),
    ok.

%%% Opening

config() ->
    Checks = [
        {kb_max_records, 10000, fun(V) -> is_integer(V) andalso V >= 1 andalso V =< 1 bsl 30 end},
        {kb_retention_ms, 90 * 24 * 3600 * 1000, fun(V) -> is_integer(V) andalso V >= 1 andalso V < 1 bsl 63 end},
        {kb_flush_ms, 100, fun(V) -> is_integer(V) andalso V >= 0 end},
        {kb_sync_interval_ms, 10000, fun(V) -> is_integer(V) andalso V >= 1 end}
    ],
    lists:foldl(
        fun
            ({Key, Default, Valid}, {ok, Acc}) ->
                V = application:get_env(autonomic, Key, Default),
                case Valid(V) of
                    true -> {ok, Acc#{Key => V}};
                    false -> {error, {invalid_config, Key, V}}
                end;
            (_, Error) ->
                Error
        end,
        {ok, #{}},
        Checks
    ).

open(#{kb_max_records := Max, kb_retention_ms := Retention, kb_flush_ms := FlushMs,
       kb_sync_interval_ms := SyncMs}) ->
    ok = flush_orphan(),
    Dir = autonomic_config:data_dir("kb"),
    T0 = erlang:monotonic_time(millisecond),
    Opts = #{max_records => Max, retention_ms => Retention},
    case autonomic_nif:kb_open(filename_bin(Dir), Opts, now_ms()) of
        {ok, H, Loaded} ->
            Ms = erlang:monotonic_time(millisecond) - T0,
            persistent_term:put(?HANDLE, H),
            ok = declare_metrics(),
            report_load(Dir, Loaded, Ms),
            ok = pg:join(?SCOPE, ?GROUP, self()),
            {Ref, Members} = pg:monitor(?SCOPE, ?GROUP),
            PruneMs = min(?MAX_PRUNE_MS, max(1, Retention div 10)),
            erlang:send_after(SyncMs, self(), anti_entropy),
            erlang:send_after(PruneMs, self(), prune),
            #{epoch := Epoch} = autonomic_nif:kb_info(H),
            State = #{
                handle => H,
                dir => Dir,
                epoch => Epoch,
                flush_ms => FlushMs,
                sync_ms => SyncMs,
                prune_ms => PruneMs,
                flusher => start_flusher(H, FlushMs),
                pg_ref => Ref,
                resync => #{},
                loaded => Loaded#{ms => Ms}
            },
            Peers = [P || P <- Members, node(P) =/= node(), node() < node(P)],
            {ok, lists:foldl(fun start_round/2, State, Peers)};
        {error, Reason} ->
            {stop, {kb_open_failed, Dir, Reason}}
    end.

%% A previous owner that crashed left its handle behind: make its pending records durable
%% before the files are read again.
flush_orphan() ->
    case persistent_term:get(?HANDLE, undefined) of
        undefined ->
            ok;
        Old ->
            case autonomic_nif:kb_flush(Old) of
                {ok, _} -> ok;
                {error, Why} -> logger:error("knowledge base: flushing the previous handle failed: ~p", [Why], ?LOG)
            end
    end.

report_load(Dir, Loaded, Ms) ->
    #{loaded := N, corrupt_lines := Corrupt, truncated_bytes := Torn, quarantined := Q} = Loaded,
    logger:info("knowledge base: ~b records loaded from ~ts in ~b ms", [N, Dir, Ms], ?LOG),
    Corrupt > 0 andalso logger:warning("knowledge base: ~b damaged log lines skipped", [Corrupt], ?LOG),
    Torn > 0 andalso logger:warning("knowledge base: torn log tail of ~b bytes truncated", [Torn], ?LOG),
    case Q of
        undefined -> ok;
        {Path, Why} ->
            logger:error("knowledge base: unreadable snapshot moved to ~ts (~ts); the log was loaded alone",
                         [Path, Why], ?LOG)
    end,
    _ = autonomic_events:publish(kb_loaded, Loaded#{dir => Dir, ms => Ms}),
    ok.

%% A name that is not valid Unicode comes back as an error tuple, which kb_open refuses.
filename_bin(Name) -> unicode:characters_to_binary(Name).

%%% Writes

%% Fills `timestamp' (now, or the last clear's epoch if the clock has not passed it yet, so that a
%% record right after a clear is kept) and `id' when absent.
defaults(Failure, Now, #{epoch := Epoch}) ->
    Filled = case Failure of
        #{timestamp := _} -> Failure;
        _ -> Failure#{timestamp => max(Now, Epoch)}
    end,
    case Filled of
        #{id := _} -> Filled;
        #{timestamp := Ts} -> Filled#{id => new_id(Ts)}
    end.

%% 16 bytes as 32 lowercase hex digits: 6 bytes of milliseconds, then 10 random bytes, so ids
%% sort roughly by time and never collide in practice (80 random bits per millisecond).
new_id(Timestamp) when is_integer(Timestamp), Timestamp >= 0 ->
    T = Timestamp band 16#FFFFFFFFFFFF,
    hex(<<T:48, (crypto:strong_rand_bytes(10))/binary>>);
new_id(_Invalid) ->
    %% The timestamp is invalid and the record will be refused; the id only has to be valid.
    hex(crypto:strong_rand_bytes(16)).

hex(Bin) ->
    << <<(hexdigit(N))>> || <<N:4>> <= Bin >>.

hexdigit(N) when N < 10 -> $0 + N;
hexdigit(N) -> $a + N - 10.

insert(H, Failure, Now) ->
    case autonomic_nif:kb_insert(H, Failure, Now) of
        %% The write lock was not free within 100 us (a long read in progress): wait on a dirty
        %% scheduler instead.
        busy -> autonomic_nif:kb_insert_dirty(H, Failure, Now);
        Result -> Result
    end.

maybe_flush_now(#{flush_ms := 0, handle := H}) ->
    case autonomic_nif:kb_flush(H) of
        {ok, _} -> ok;
        {error, Why} ->
            logger:error("knowledge base: flush failed: ~p (kept pending, retried)", [Why], ?LOG),
            ok
    end;
maybe_flush_now(_State) ->
    ok.

start_flusher(_H, 0) ->
    undefined;
start_flusher(H, Ms) ->
    proc_lib:spawn_link(fun() -> flusher(H, Ms, ok) end).

flusher(H, Ms, Last) ->
    receive
    after Ms ->
        flusher(H, Ms, flush(H, Last))
    end.

flush(H, Last) ->
    case autonomic_nif:kb_flush(H) of
        {ok, #{lines := Lines, snapshot := Snapshot}} ->
            Lines > 0 andalso autonomic_metrics:inc(autonomic_knowledge_flushed_lines_total, #{}, Lines),
            Snapshot andalso autonomic_metrics:inc(autonomic_knowledge_snapshots_total, #{}),
            Last =/= ok andalso logger:notice("knowledge base: flushing works again", [], ?LOG),
            ok;
        {error, Why} = Error ->
            autonomic_metrics:inc(autonomic_knowledge_flush_errors_total, #{}),
            %% Reported once per outage, not at every retry.
            Last =:= ok andalso report_flush_failure(Why),
            Error
    end.

report_flush_failure(Why) ->
    logger:error("knowledge base: flush failed: ~p (records kept pending, retried)", [Why], ?LOG),
    _ = autonomic_events:publish(kb_persist_failed, #{reason => Why}),
    true.

%%% Cluster

peers() ->
    [P || P <- pg:get_members(?SCOPE, ?GROUP), node(P) =/= node()].

%% Sends to every peer; a peer whose message could not be sent right away is marked for a
%% catch-up at the next anti-entropy tick.
broadcast(Type, Payload, State) ->
    lists:foldl(fun(P, S) -> send(P, Type, Payload, S) end, State, peers()).

send(Peer, Type, Payload, #{epoch := Epoch, resync := Resync} = State) ->
    Msg = {?TAG, ?PROTO, Type, self(), Epoch, Payload},
    autonomic_metrics:inc(autonomic_knowledge_sync_messages_total, #{type => Type}),
    case erlang:send(Peer, Msg, [noconnect, nosuspend]) of
        ok ->
            State;
        _NotSent ->
            autonomic_metrics:inc(autonomic_knowledge_sync_dropped_total, #{type => Type}),
            State#{resync := Resync#{Peer => true}}
    end.

start_round(Peer, #{handle := H} = State) ->
    {_Epoch, Digest} = autonomic_nif:kb_digest(H),
    send(Peer, digest, Digest, State).

reconcile_epoch(From, Epoch, #{epoch := Mine} = State) when Epoch > Mine ->
    #{handle := H} = State,
    case autonomic_nif:kb_adopt_epoch(H, Epoch) of
        {ok, Removed} ->
            _ = autonomic_events:publish(kb_cleared, #{epoch => Epoch, origin => node(From), removed => Removed}),
            logger:notice("knowledge base: adopted the clear of ~p (epoch ~b, ~b records removed)",
                          [node(From), Epoch, Removed], ?LOG),
            State#{epoch := Epoch};
        {error, Why} ->
            logger:error("knowledge base: cannot adopt epoch ~b: ~p", [Epoch, Why], ?LOG),
            State
    end;
reconcile_epoch(From, Epoch, #{epoch := Mine} = State) when Epoch < Mine ->
    send(From, epoch, none, State);
reconcile_epoch(_From, _Epoch, State) ->
    State.

peer_message(records, _From, Lines, State) when is_binary(Lines) ->
    {_Added, State1} = merge(Lines, peer, State),
    State1;
peer_message(catchup, From, Lines, State) when is_binary(Lines) ->
    case merge(Lines, peer, State) of
        {0, S} -> S;
        {Added, S} ->
            _ = autonomic_events:publish(kb_caught_up, #{from => node(From), added => Added}),
            S
    end;
peer_message(digest, From, Digest, #{handle := H} = State) when is_binary(Digest) ->
    case autonomic_nif:kb_sync_diff(H, Digest) of
        {ok, [], _} -> State;
        {ok, Buckets, Ids} -> send(From, ids, {Buckets, Ids}, State);
        {error, Why} -> bad_message(From, digest, Why, State)
    end;
peer_message(ids, From, {Buckets, Ids}, #{handle := H} = State) when is_list(Buckets), is_list(Ids) ->
    case autonomic_nif:kb_sync_missing(H, Buckets, Ids) of
        {ok, Chunks, Want} ->
            S1 = lists:foldl(fun(C, S) -> send(From, catchup, C, S) end, State, Chunks),
            case Want of
                [] -> S1;
                _ -> send(From, want, Want, S1)
            end;
        {error, Why} ->
            bad_message(From, ids, Why, State)
    end;
peer_message(want, From, Ids, #{handle := H} = State) when is_list(Ids) ->
    case autonomic_nif:kb_lines(H, Ids) of
        {ok, Chunks} -> lists:foldl(fun(C, S) -> send(From, catchup, C, S) end, State, Chunks);
        {error, Why} -> bad_message(From, want, Why, State)
    end;
peer_message(epoch, _From, none, State) ->
    State;
peer_message(Type, From, _Payload, State) ->
    bad_message(From, Type, malformed, State).

merge(Lines, Origin, #{handle := H} = State) ->
    {ok, #{added := Added, rejected := Rejected}} = autonomic_nif:kb_merge(H, Lines, now_ms()),
    Added > 0 andalso autonomic_metrics:inc(autonomic_knowledge_recorded_total, #{origin => Origin}, Added),
    Rejected > 0 andalso logger:debug("knowledge base: ~b records from a peer not kept", [Rejected], ?LOG),
    {Added, State}.

bad_message(From, Type, Why, State) ->
    logger:warning("knowledge base: bad ~p message from ~p: ~p", [Type, From, Why], ?LOG),
    State.

%%% Metrics

declare_metrics() ->
    Counters = [
        {autonomic_knowledge_recorded_total, "Failures added to the knowledge base on this node, by origin (local, peer, import)."},
        {autonomic_knowledge_flushed_lines_total, "Records appended to the knowledge base log."},
        {autonomic_knowledge_snapshots_total, "Knowledge base snapshots written by the flusher."},
        {autonomic_knowledge_flush_errors_total, "Failed knowledge base flushes (records stay pending and are retried)."},
        {autonomic_knowledge_sync_messages_total, "Knowledge base messages sent to other nodes, by type."},
        {autonomic_knowledge_sync_dropped_total, "Knowledge base messages not sent (peer busy or gone); repaired by anti-entropy."}
    ],
    lists:foreach(fun({Name, Help}) -> ok = autonomic_metrics:declare(Name, counter, Help) end, Counters),
    autonomic_metrics:register_collector(kb, fun collect/0).

%% Scrape-time figures from the NIF.
collect() ->
    case persistent_term:get(?HANDLE, undefined) of
        undefined ->
            [];
        H ->
            I = autonomic_nif:kb_info(H),
            G = fun(Name, Help, Key) -> {Name, gauge, Help, [{#{}, maps:get(Key, I)}]} end,
            [
                G(autonomic_knowledge_records, "Failures in the knowledge base on this node.", records),
                G(autonomic_knowledge_max_records, "History limit of the knowledge base.", max_records),
                G(autonomic_knowledge_symptoms, "Distinct symptoms interned by the knowledge base.", symptoms),
                G(autonomic_knowledge_pending_lines, "Records added since the last flush (lost on kill -9).", pending_lines),
                G(autonomic_knowledge_log_lines, "Records in the knowledge base log since its snapshot.", log_lines),
                G(autonomic_knowledge_epoch, "Epoch of the last clear (ms since the Unix epoch; 0: never cleared).", epoch),
                {autonomic_knowledge_evictions_total, counter, "Records removed from the knowledge base, by reason.",
                    [{#{reason => limit}, maps:get(evicted_limit, I)},
                     {#{reason => retention}, maps:get(evicted_retention, I)},
                     {#{reason => cleared}, maps:get(evicted_cleared, I)}]},
                {autonomic_knowledge_read_waits_total, counter,
                    "Knowledge base reads that waited for a write (left-right: at most one batch).",
                    [{#{}, maps:get(read_waits, I)}]},
                {autonomic_knowledge_read_wait_max_seconds, gauge,
                    "Longest wait of a knowledge base read for a write, in seconds.",
                    [{#{}, maps:get(read_wait_max_ns, I) / 1.0e9}]},
                {autonomic_knowledge_queries_total, counter, "Knowledge base queries on this node, by kind.",
                    [{#{kind => similar}, maps:get(queries_similar, I)},
                     {#{kind => recommend}, maps:get(queries_recommend, I)},
                     {#{kind => success_rate}, maps:get(queries_success_rate, I)},
                     {#{kind => effectiveness}, maps:get(queries_effectiveness, I)}]}
            ]
    end.

now_ms() ->
    erlang:system_time(millisecond).
