%%% @doc Owns this node's job tables and does nothing else, so that a crash of the store server
%%% (a chaos process kill) never loses the replica: the tables live as long as this process,
%%% which runs no workload code.
%%%
%%% Tables (public, named): `jobs_rows' `{Id, Status, Job}' with Status `pending | done';
%%% `jobs_pending' (ordered set) `{Id, LeaseUntil}', the jobs not done, 0 when not claimed;
%%% `jobs_dirty' `{Id, Status}', local changes not yet pushed to the other store.
-module(jobs_table).
-behaviour(gen_server).

-export([start_link/0]).
-export([init/1, handle_call/3, handle_cast/2]).

%% @doc Starts the owner and creates the tables.
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Creates the tables.
-spec init([]) -> {ok, #{}}.
init([]) ->
    _ = ets:new(jobs_rows, [named_table, public, set, {read_concurrency, true}]),
    _ = ets:new(jobs_pending, [named_table, public, ordered_set]),
    _ = ets:new(jobs_dirty, [named_table, public, set]),
    {ok, #{}}.

%% @doc Answers nothing.
-spec handle_call(term(), gen_server:from(), map()) -> {reply, {error, unknown_call}, map()}.
handle_call(_Req, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @doc Ignores casts.
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, St) ->
    {noreply, St}.
