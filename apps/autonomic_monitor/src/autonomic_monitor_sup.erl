%%% @doc Supervisor of the monitor agent. `rest_for_one', in dependency order: the ingest table
%%% first (it needs nothing), then the monitor, then the heartbeat process that reports to it (a
%%% restarted monitor knows no suspicion, so the detectors restart with it), then the resource
%%% sampler, the health checks and the /metrics endpoint.
-module(autonomic_monitor_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Flags = #{strategy => rest_for_one, intensity => 5, period => 10},
    Children = [#{id => M, start => {M, start_link, []}}
                || M <- [mape_k_ingest, mape_k_monitor, mape_k_heartbeat, mape_k_resources, mape_k_checks, mape_k_http]],
    {ok, {Flags, Children}}.
