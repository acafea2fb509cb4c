%%% @doc This node's client: submits `rate' jobs per second (low shedding priority, 1), never
%%% more, and appends the id of every acknowledged job to the ack log
%%% ({@link jobs_example:ack_log/0}) before it counts as acknowledged to the client, so an
%%% audit after a `kill -9' knows every job the workload promised to process.
-module(jobs_client).
-behaviour(gen_server).

-export([start_link/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(LOG, #{domain => [autonomic, jobs]}).
-define(PRIORITY, 1).

%% @doc Starts the client.
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Opens the ack log (append) and starts submitting.
-spec init([]) -> {ok, map()}.
init([]) ->
    Rate = application:get_env(jobs_example, rate, 20),
    Path = jobs_example:ack_log(),
    ok = filelib:ensure_dir(Path),
    {ok, Fd} = file:open(Path, [append, raw, binary]),
    _ = Rate > 0 andalso self() ! tick,
    {ok, #{fd => Fd, period => max(1, 1000 div max(1, Rate)), next => erlang:monotonic_time(millisecond)}}.

%% @doc No calls.
-spec handle_call(term(), gen_server:from(), map()) -> {reply, {error, unknown_call}, map()}.
handle_call(_, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @doc No casts.
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_, St) ->
    {noreply, St}.

%% @doc Submits one job per period; a late tick does not catch up (the rate is a bound).
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(tick, #{fd := Fd, period := P, next := Next} = St) ->
    case jobs_example:submit(?PRIORITY, job) of
        {ok, Id} -> ok = file:write(Fd, [Id, $\n]);
        {error, _} -> ok
    end,
    Now = erlang:monotonic_time(millisecond),
    Next1 = max(Next + P, Now),
    _ = erlang:send_after(max(0, Next1 - Now), self(), tick),
    {noreply, St#{next := Next1}};
handle_info(_, St) ->
    {noreply, St}.

%% @doc Closes the ack log.
-spec terminate(term(), map()) -> ok.
terminate(_Reason, #{fd := Fd}) ->
    _ = file:close(Fd),
    ok.
