%%% @doc Top supervisor of the jobs workload. `rest_for_one' in start order: the table outlives
%%% the store server (a crashed store server keeps its jobs), the health process (checks,
%%% breakers, failover) comes before the workers and the client that use what it installs.
-module(jobs_example_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

%% @doc Starts the supervisor, registered as `jobs_example_sup'.
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @doc The workload's children.
-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Flags = #{strategy => rest_for_one, intensity => 20, period => 5},
    Children = [#{id => jobs_table, start => {jobs_table, start_link, []}},
                #{id => jobs_store, start => {jobs_store, start_link, []}},
                #{id => jobs_sync, start => {jobs_sync, start_link, []}},
                #{id => jobs_health, start => {jobs_health, start_link, []}},
                #{id => jobs_worker_sup, start => {jobs_worker_sup, start_link, []}, type => supervisor},
                #{id => jobs_client, start => {jobs_client, start_link, []}}],
    {ok, {Flags, Children}}.
