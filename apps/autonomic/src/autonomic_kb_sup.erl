%%% @doc Supervises the knowledge base's owner and the `pg' scope its cluster group lives in.
%%% `rest_for_one': if the scope restarts, the owner restarts too and joins it again.
-module(autonomic_kb_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Flags = #{strategy => rest_for_one, intensity => 5, period => 10},
    Children = [
        #{id => scope, start => {pg, start_link, [autonomic_kb_server:scope()]}},
        %% The owner flushes in terminate/2: give it time to write.
        #{id => autonomic_kb_server, start => {autonomic_kb_server, start_link, []}, shutdown => 30000}
    ],
    {ok, {Flags, Children}}.
