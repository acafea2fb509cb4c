%%% @doc Keeps this node's replica and the other store's converged: every `sync_ms' (200) it
%%% pushes the rows changed here since the last successful push; when it starts, and when the
%%% other store's node comes up (a restart, a healed partition), it exchanges every row both
%%% ways. Pushes are calls to the other store with a timeout, so a row leaves the dirty set only
%%% once the other store has it. Runs in its own process: the store server never calls another
%%% store, so two stores syncing at once cannot wait on each other.
-module(jobs_sync).
-behaviour(gen_server).

-export([start_link/0, now/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(LOG, #{domain => [autonomic, jobs]}).
-define(SYNC_MS, 200).
-define(TIMEOUT, 3000).

%% @doc Starts the syncer.
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Runs a full exchange with the other store now; `ok' when it answered.
-spec now() -> ok | {error, term()}.
now() ->
    gen_server:call(?MODULE, full, 2 * ?TIMEOUT + 1000).

%% @doc Full exchange first (a store that restarted empty fills itself from the other).
-spec init([]) -> {ok, #{full := boolean()}}.
init([]) ->
    ok = net_kernel:monitor_nodes(true),
    self() ! tick,
    {ok, #{full => true}}.

%% @doc `full': a full exchange on demand.
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call(full, _From, St) ->
    R = full(),
    {reply, R, St#{full := R =/= ok}};
handle_call(_, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @doc Ignores casts.
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_, St) ->
    {noreply, St}.

%% @doc The periodic push, and a full exchange owed after a nodeup until one succeeds.
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(tick, #{full := Full} = St) ->
    Ok = case Full of
        true -> full() =:= ok;
        false -> push_dirty() =:= ok
    end,
    _ = erlang:send_after(?SYNC_MS, self(), tick),
    {noreply, St#{full := Full andalso not Ok}};
handle_info({nodeup, Node}, St) ->
    {noreply, St#{full := maps:get(full, St) orelse lists:member(Node, others())}};
handle_info(_, St) ->
    {noreply, St}.

full() ->
    Dirty = ets:tab2list(jobs_dirty),
    lists:foldl(fun(Other, Acc) ->
                        R = case jobs_store:dump(Other, ?TIMEOUT) of
                            {ok, Rows} ->
                                ok = jobs_store:merge(Rows),
                                jobs_store:push(Other, ets:tab2list(jobs_rows), ?TIMEOUT);
                            {error, _} = E ->
                                E
                        end,
                        case R of
                            ok -> lists:foreach(fun(D) -> ets:delete_object(jobs_dirty, D) end, Dirty), Acc;
                            {error, Reason} ->
                                logger:debug("jobs sync with ~p: ~p", [Other, Reason], ?LOG),
                                {error, Reason}
                        end
                end, ok, others()).

push_dirty() ->
    case {others(), ets:tab2list(jobs_dirty)} of
        {_, []} -> ok;
        {[], _} -> ok;
        {Others, Dirty} ->
            Rows = lists:append([ets:lookup(jobs_rows, Id) || {Id, _} <- Dirty]),
            case lists:all(fun(O) -> jobs_store:push(O, Rows, ?TIMEOUT) =:= ok end, Others) of
                %% delete_object: a row that changed since it was read stays dirty.
                true -> lists:foreach(fun(D) -> ets:delete_object(jobs_dirty, D) end, Dirty);
                false -> error
            end
    end.

others() ->
    [N || N <- jobs_example:stores(), N =/= node()].
