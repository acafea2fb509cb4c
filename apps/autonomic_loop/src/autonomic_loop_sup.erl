%%% @doc Top supervisor of the loop on a node: the service registry first (the coordinator reads
%%% it), then this node's coordinator process (a follower until it claims the coordinator's
%%% global name).
-module(autonomic_loop_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

%% @doc Starts the supervisor.
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @private
-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Children = [
        #{id => autonomic_loop_services, start => {autonomic_loop_services, start_link, []}},
        #{id => autonomic_coordinator, start => {autonomic_coordinator, start_link, []}, shutdown => 10000}
    ],
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10}, Children}}.
