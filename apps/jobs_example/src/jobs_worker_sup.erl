%%% @doc Supervises this node's workers (`workers' of them, child ids `{worker, I}').
%%% `one_for_one': a crashed worker is replaced alone, its jobs' leases run out and other workers
%%% take them.
-module(jobs_worker_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

%% @doc Starts the supervisor, registered as `jobs_worker_sup'.
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @doc The workers.
-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    N = application:get_env(jobs_example, workers, 4),
    Flags = #{strategy => one_for_one, intensity => 50, period => 10},
    {ok, {Flags, [#{id => {worker, I}, start => {jobs_worker, start_link, [I]}} || I <- lists:seq(1, N)]}}.
