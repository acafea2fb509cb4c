%%% @doc One replica of the job queue (this node's), served to every node. The workload uses two
%%% of them, on the nodes listed in the `stores' key (primary first), registered with
%%% `autonomic_backends' as the backend `jobs_store'; clients write a job to both before they
%%% count it acknowledged (at least one must take it), workers claim from the active one and
%%% mark it done on both.
%%%
%%% Replicas converge by merging: a job is `pending' or `done', and `done' wins. Every local
%%% change is marked dirty; {@link jobs_sync} pushes the dirty rows to the other store and
%%% exchanges everything when either store (re)starts or a partition heals, so an acknowledged
%%% job survives the loss of either replica.
%%%
%%% Claims are leases: a job claimed and not completed within `lease_ms' is handed out again, so
%%% a worker killed mid-job (or a node killed) delays a job, never loses it.
%%%
%%% Fault injection (chaos): {@link set_fault/1} makes every call to this replica slow
%%% (`#{latency_ms => N}') or fail (`#{error => true}') until {@link clear_fault/0}.
-module(jobs_store).
-behaviour(gen_server).

-export([start_link/0]).
-export([put/3, claim/4, complete/3, ping/2, dump/2, push/3, merge/1, size/0, set_fault/1, clear_fault/0, fault/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(LOG, #{domain => [autonomic, jobs]}).
-define(FAULT, {?MODULE, fault}).

-type job() :: #{id := binary(), payload => term(), reply_to => pid() | undefined, submitted_at => integer()}.
-type fault() :: none | #{latency_ms => non_neg_integer(), error => boolean()}.
-export_type([job/0, fault/0]).

%%% API (each takes the store's node first and a timeout last)

%% @doc Starts this node's store server.
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Stores a job (pending) on the replica of `Node'.
-spec put(node(), job(), timeout()) -> ok | {error, term()}.
put(Node, Job, Timeout) ->
    call(Node, {put, Job}, Timeout).

%% @doc Claims up to `N' jobs not done and not leased, for `LeaseMs'.
-spec claim(node(), pos_integer(), pos_integer(), timeout()) -> {ok, [job()]} | {error, term()}.
claim(Node, N, LeaseMs, Timeout) ->
    call(Node, {claim, N, LeaseMs}, Timeout).

%% @doc Marks jobs done.
-spec complete(node(), [job()], timeout()) -> ok | {error, term()}.
complete(Node, Jobs, Timeout) ->
    call(Node, {complete, Jobs}, Timeout).

%% @doc A health check of the replica (goes through the fault hook like any call).
-spec ping(node(), timeout()) -> ok | {error, term()}.
ping(Node, Timeout) ->
    call(Node, ping, Timeout).

%% @doc Every row of the replica: `[{Id, pending | done, Job}]'.
-spec dump(node(), timeout()) -> {ok, [{binary(), pending | done, job() | undefined}]} | {error, term()}.
dump(Node, Timeout) ->
    call(Node, dump, Timeout).

%% @doc Merges rows into the replica of `Node' (`done' wins).
-spec push(node(), [{binary(), pending | done, job() | undefined}], timeout()) -> ok | {error, term()}.
push(Node, Rows, Timeout) ->
    call(Node, {merge, Rows}, Timeout).

%% @doc Merges rows from the other store into this node's replica (`done' wins; not dirty).
-spec merge([{binary(), pending | done, job() | undefined}]) -> ok.
merge(Rows) ->
    lists:foreach(fun merge_row/1, Rows).

%% @doc Rows in this node's replica: `#{pending, done}'.
-spec size() -> #{pending := non_neg_integer(), done := non_neg_integer()}.
size() ->
    Pending = ets:info(jobs_pending, size),
    #{pending => Pending, done => ets:info(jobs_rows, size) - Pending}.

%% @doc Injects a fault into every call to this node's replica.
-spec set_fault(fault()) -> ok | {error, {invalid_fault, term()}}.
set_fault(none) ->
    clear_fault();
set_fault(F) when is_map(F) ->
    case maps:fold(fun(latency_ms, V, Ok) -> Ok andalso is_integer(V) andalso V >= 0;
                      (error, V, Ok) -> Ok andalso is_boolean(V);
                      (_, _, _) -> false
                   end, true, F) of
        true -> persistent_term:put(?FAULT, F);
        false -> {error, {invalid_fault, F}}
    end;
set_fault(F) ->
    {error, {invalid_fault, F}}.

%% @doc Removes an injected fault.
-spec clear_fault() -> ok.
clear_fault() ->
    _ = persistent_term:erase(?FAULT),
    ok.

%% @doc The fault in force on this node.
-spec fault() -> fault().
fault() ->
    persistent_term:get(?FAULT, none).

call(Node, Req, Timeout) ->
    try gen_server:call({?MODULE, Node}, Req, Timeout)
    catch exit:{Reason, _} -> {error, store_unreachable(Reason)}
    end.

store_unreachable({nodedown, _}) -> nodedown;
store_unreachable(noproc) -> noproc;
store_unreachable(timeout) -> timeout;
store_unreachable(Other) -> Other.

%%% gen_server

%% @doc Nothing to set up: the tables belong to {@link jobs_table}.
-spec init([]) -> {ok, #{}}.
init([]) ->
    {ok, #{}}.

%% @doc The store's requests, each through the fault hook.
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call(Req, _From, St) ->
    case fault() of
        #{error := true} ->
            {reply, {error, injected_fault}, St};
        #{latency_ms := Ms} when Ms > 0 ->
            %% Injected latency holds the server, as a slow disk would: every caller waits.
            timer:sleep(Ms),
            {reply, handle(Req), St};
        _ ->
            {reply, handle(Req), St}
    end.

handle({put, #{id := Id} = Job}) ->
    ok = merge_row({Id, pending, Job}),
    dirty(Id, pending);
handle({claim, N, LeaseMs}) ->
    %% System time: an unclaimed job's lease is 0, before any (monotonic time may be negative).
    Now = erlang:system_time(millisecond),
    Free = case ets:select(jobs_pending, [{{'$1', '$2'}, [{'<', '$2', Now}], ['$1']}], N) of
        {Ids, _} -> Ids;
        '$end_of_table' -> []
    end,
    Jobs = [begin
                true = ets:insert(jobs_pending, {Id, Now + LeaseMs}),
                ets:lookup_element(jobs_rows, Id, 3)
            end || Id <- Free],
    {ok, Jobs};
handle({complete, Jobs}) ->
    lists:foreach(fun(#{id := Id} = J) -> ok = merge_row({Id, done, J}), dirty(Id, done) end, Jobs);
handle({merge, Rows}) ->
    merge(Rows);
handle(ping) ->
    ok;
handle(dump) ->
    {ok, ets:tab2list(jobs_rows)};
handle(_) ->
    {error, unknown_call}.

%% @doc Ignores casts.
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_, St) ->
    {noreply, St}.

%% @doc Ignores other messages.
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(_, St) ->
    {noreply, St}.

%% A local change the other store has not seen yet (jobs_sync pushes it).
dirty(Id, Status) ->
    true = ets:insert(jobs_dirty, {Id, Status}),
    ok.

merge_row({Id, done, Job}) ->
    true = ets:insert(jobs_rows, {Id, done, Job}),
    true = ets:delete(jobs_pending, Id),
    ok;
merge_row({Id, pending, Job}) ->
    %% insert_new: a row already here is pending (nothing to add) or done (done wins).
    _ = ets:insert_new(jobs_rows, {Id, pending, Job}) andalso ets:insert(jobs_pending, {Id, 0}),
    ok.
