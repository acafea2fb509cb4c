%%% @doc Supervisor of the quorum manager and the leader process. `rest_for_one': when the manager
%%% restarts, the leader process restarts after it and so gives up the global name (the manager
%%% re-evaluates from scratch); the leader process alone can restart without the manager.
-module(autonomic_quorum_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Flags = #{strategy => rest_for_one, intensity => 5, period => 10},
    Children = [
        #{id => quorum_manager, start => {quorum_manager, start_link, []}},
        #{id => quorum_leader, start => {quorum_leader, start_link, []}}
    ],
    {ok, {Flags, Children}}.
