%%% @doc Supervises the planner: the owner of the planner C-node's port. The owner restarts the
%%% C-node itself (with a backoff) whenever it dies, so a crash-looping C-node never exhausts
%%% this supervisor's restart intensity and never takes the application down; this supervisor
%%% only restarts the owner, should the owner itself fail.
-module(autonomic_planner_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Flags = #{strategy => one_for_one, intensity => 10, period => 60},
    Children = [
        #{id => autonomic_planner_cnode,
          start => {autonomic_planner_cnode, start_link, []},
          shutdown => 5000}
    ],
    {ok, {Flags, Children}}.
