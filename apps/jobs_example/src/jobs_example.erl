%%% @doc The jobs example workload: a job queue replicated over two stores on two of the
%%% cluster's nodes (`stores', primary first), fed by a bounded-rate client on every node and
%%% drained by workers on every node. It is what the chaos orchestrator hurts and the SLO tracker
%%% measures.
%%%
%%% ```
%%% 1> jobs_example:submit(1, #{work => <<"x">>}).
%%% {ok,<<"a@h/1700000000000/42">>}
%%% 2> jobs_example:probe(1000).
%%% ok
%%% 3> jobs_example:stats().
%%% #{submitted => 1200, acked => 1198, rejected => 0, failed => 2, completed => 1190, ...}
%%% '''
%%%
%%% Guarantee: a job is acknowledged (`{ok, Id}') only once a store holds it, and every
%%% acknowledged job is processed at least once, whatever single node or process dies
%%% ({@link jobs_store}: replication, leases; {@link jobs_sync}: convergence). The client logs the
%%% id of every job it had acknowledged to `jobs_acked.log' in the node's data directory, so
%%% {@link audit/2} can prove it after a `kill -9'.
%%%
%%% Parts: {@link jobs_backend} (which store, breakers, failover), {@link jobs_health} (health
%%% checks, the workload's own failover, crash reports), {@link jobs_worker}, {@link jobs_client}.
-module(jobs_example).

-export([submit/2, probe/1, stats/0, stores/0, incarnation/0, ack_log/0, count/2]).
-export([read_ack_log/1, done_ids/0, audit/2]).
-export([init_counters/0, loop_services/0]).

-define(COUNTERS, {?MODULE, counters}).
-define(INCARNATION, {?MODULE, incarnation}).
-define(NAMES, [submitted, acked, rejected, failed, completed, probes_ok, probes_failed]).
%% Priorities for shedding: probes (a user waiting) pass before the bulk clients' jobs.
-define(PROBE_PRIORITY, 10).

%% @doc Submits a job with a shedding priority (`autonomic_shed': low priorities are shed first).
%% `{ok, Id}' once a store holds it; `{error, shed}' when shedding refused it;
%% `{error, no_store}' when no store took it.
-spec submit(integer(), term()) -> {ok, binary()} | {error, shed | no_store | {invalid_priority, term()}}.
submit(Priority, Payload) ->
    submit(Priority, Payload, undefined).

submit(Priority, Payload, ReplyTo) ->
    case admit(Priority) of
        true ->
            count(submitted, 1),
            Id = iolist_to_binary([atom_to_binary(node()), $/, integer_to_binary(incarnation()), $/,
                                   integer_to_binary(erlang:unique_integer([positive, monotonic]))]),
            Job = #{id => Id, payload => Payload, reply_to => ReplyTo,
                    submitted_at => erlang:system_time(millisecond)},
            case jobs_backend:put(Job) of
                ok -> count(acked, 1), {ok, Id};
                {error, _} = E -> count(failed, 1), E
            end;
        false ->
            count(rejected, 1),
            {error, shed};
        {error, _} = E ->
            E
    end.

admit(Priority) ->
    try autonomic_shed:admit(Priority)
    %% Shedding not running (the toolkit restarting): admit, as with no shedding set.
    catch error:badarg -> true
    end.

%% @doc A probe: submits a job and waits until a worker has processed it, within `DeadlineMs'.
%% `ok', or `{error, Reason}' (`timeout', `shed', `no_store').
-spec probe(pos_integer()) -> ok | {error, term()}.
probe(DeadlineMs) when is_integer(DeadlineMs), DeadlineMs > 0 ->
    Deadline = erlang:monotonic_time(millisecond) + DeadlineMs,
    R = case submit(?PROBE_PRIORITY, probe, self()) of
        {ok, Id} ->
            Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
            receive {job_done, Id} -> ok
            after Left -> {error, timeout}
            end;
        {error, _} = E ->
            E
    end,
    count(case R of ok -> probes_ok; _ -> probes_failed end, 1),
    R;
probe(D) ->
    {error, {invalid_deadline, D}}.

%% @doc This node's counters since the workload started here, with the node and incarnation.
-spec stats() -> #{atom() => term()}.
stats() ->
    C = persistent_term:get(?COUNTERS),
    maps:from_list([{node, node()}, {incarnation, incarnation()}
                    | [{N, counters:get(C, I)} || {I, N} <- lists:enumerate(?NAMES)]]).

%% @doc Adds to one of this node's counters.
-spec count(atom(), non_neg_integer()) -> ok.
count(Name, N) ->
    I = index(Name, ?NAMES, 1),
    counters:add(persistent_term:get(?COUNTERS), I, N).

index(N, [N | _], I) -> I;
index(N, [_ | T], I) -> index(N, T, I + 1).

%% @doc Creates the counters (the application does, at start).
-spec init_counters() -> ok.
init_counters() ->
    persistent_term:put(?COUNTERS, counters:new(length(?NAMES), [write_concurrency])),
    persistent_term:put(?INCARNATION, erlang:system_time(millisecond)).

%% @doc The services of this node the MAPE-K loop may heal, for
%% `autonomic_loop:register_service/2' (whoever starts the loop registers them; the workload
%% itself never needs the loop): the workers (their supervisor, restartable as a whole by its
%% parent) and the store (its server and syncer, the backend `jobs_store' it may fail over, and
%% the stores' health checks).
-spec loop_services() -> [{atom(), map()}].
loop_services() ->
    [{jobs_store, #{supervisor => jobs_example_sup, children => [jobs_store, jobs_sync], backend => jobs_store,
                    checks => [jobs_store_primary, jobs_store_secondary],
                    target_checks => maps:from_list([{S, jobs_health:check_name(S)} || S <- stores()])}},
     {jobs_workers, #{supervisor => jobs_worker_sup, parent => jobs_example_sup, depends_on => [jobs_store]}}].

%% @doc The store nodes, primary first (application env `stores', default this node).
-spec stores() -> [node()].
stores() ->
    dedup(application:get_env(jobs_example, stores, [node()])).

dedup([A, A]) -> [A];
dedup([_ | _] = L) -> L;
dedup(_) -> [node()].

%% @doc When the workload started on this node (system time, ms): ids are unique across restarts.
-spec incarnation() -> integer().
incarnation() ->
    persistent_term:get(?INCARNATION).

%% @doc Where the client logs the ids of the jobs it had acknowledged.
-spec ack_log() -> file:filename().
ack_log() ->
    filename:join(autonomic_config:data_dir(), "jobs_acked.log").

%% @doc Reads an ack log (any node's: it is a file); a torn last line is ignored.
-spec read_ack_log(file:filename()) -> {ok, [binary()]} | {error, term()}.
read_ack_log(Path) ->
    case file:read_file(Path) of
        {ok, Bin} ->
            Lines = binary:split(Bin, <<"\n">>, [global]),
            %% The last element is after the last newline: empty, or a torn write.
            {ok, [L || L <- lists:droplast(Lines), L =/= <<>>]};
        {error, enoent} ->
            {ok, []};
        {error, _} = E ->
            E
    end.

%% @doc The ids this node's store holds as done.
-spec done_ids() -> [binary()].
done_ids() ->
    ets:select(jobs_rows, [{{'$1', done, '_'}, [], ['$1']}]).

%% @doc Checks that every acknowledged job is done: `#{acked, completed, lost, lost_ids}'
%% (`lost_ids': at most 20 of them).
-spec audit([binary()], [binary()]) -> #{acked := non_neg_integer(), completed := non_neg_integer(),
                                        lost := non_neg_integer(), lost_ids := [binary()]}.
audit(Acked, Done) ->
    DoneSet = sets:from_list(Done, [{version, 2}]),
    AckedSet = sets:from_list(Acked, [{version, 2}]),
    Lost = [Id || Id <- sets:to_list(AckedSet), not sets:is_element(Id, DoneSet)],
    #{acked => sets:size(AckedSet), completed => sets:size(AckedSet) - length(Lost),
      lost => length(Lost), lost_ids => lists:sublist(lists:sort(Lost), 20)}.
