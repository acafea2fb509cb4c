%%% @doc Top supervisor of the Execute toolkit. `one_for_one': the parts do not depend on each
%%% other's state, so the crash of one never resets another (an installed circuit breaker
%%% survives a crash of the entitlements server, and so on). The settings the actuator changes,
%%% and the actuator with them, are grouped under {@link autonomic_actuation_sup}.
-module(autonomic_execute_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Flags = #{strategy => one_for_one, intensity => 10, period => 10},
    Workers = [#{id => M, start => {M, start_link, []}}
               || M <- [autonomic_breaker_server, autonomic_escalate, autonomic_entitlements, supervisor_controller]],
    Actuation = #{id => autonomic_actuation_sup, start => {autonomic_actuation_sup, start_link, []}, type => supervisor},
    {ok, {Flags, Workers ++ [Actuation]}}.
