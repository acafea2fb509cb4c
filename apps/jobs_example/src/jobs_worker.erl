%%% @doc A worker: claims a few jobs from the active store, processes each (`work_ms' of work),
%%% marks them done on every store, then tells a waiting prober (`reply_to'). Polls every 20 ms
%%% while the queue is empty, at once while it is not.
-module(jobs_worker).
-behaviour(gen_server).

-export([start_link/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(BATCH, 5).
-define(IDLE_MS, 20).

%% @doc Starts worker `I'.
-spec start_link(pos_integer()) -> {ok, pid()} | {error, term()}.
start_link(I) ->
    gen_server:start_link(?MODULE, I, []).

%% @doc Starts polling at once.
-spec init(pos_integer()) -> {ok, map()}.
init(I) ->
    self() ! work,
    {ok, #{id => I, lease => application:get_env(jobs_example, lease_ms, 2000),
           work_ms => application:get_env(jobs_example, work_ms, 2)}}.

%% @doc No calls.
-spec handle_call(term(), gen_server:from(), map()) -> {reply, {error, unknown_call}, map()}.
handle_call(_, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @doc No casts.
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_, St) ->
    {noreply, St}.

%% @doc One round of work.
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(work, #{lease := Lease, work_ms := WorkMs} = St) ->
    Next = case jobs_backend:claim(?BATCH, Lease) of
        {ok, [_ | _] = Jobs} ->
            %% The work itself: a job is processed before it is marked done anywhere.
            _ = [timer:sleep(WorkMs) || WorkMs > 0, _ <- Jobs],
            case jobs_backend:complete(Jobs) of
                ok ->
                    jobs_example:count(completed, length(Jobs)),
                    _ = [Pid ! {job_done, Id} || #{id := Id, reply_to := Pid} <- Jobs, is_pid(Pid)],
                    0;
                {error, _} ->
                    %% Not recorded anywhere: the lease runs out and the jobs are done again.
                    ?IDLE_MS
            end;
        _ ->
            ?IDLE_MS
    end,
    _ = erlang:send_after(Next, self(), work),
    {noreply, St};
handle_info(_, St) ->
    {noreply, St}.
