%%% @doc Supervisor of the settings the actuator changes and of the actuator. `rest_for_one', in
%%% this order: the actuator's record of actions in force ({@link autonomic_actuator_store})
%%% first, so that only its own (unlikely) crash erases it, together with every setting it
%%% describes; then the settings' owners (token buckets, shedding, degradation, backends);
%%% the actuator last, restarted with any of them.
-module(autonomic_actuation_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Flags = #{strategy => rest_for_one, intensity => 10, period => 10},
    Children = [#{id => M, start => {M, start_link, []}}
                || M <- [autonomic_actuator_store, autonomic_bucket, autonomic_shed, autonomic_degrade,
                         autonomic_backends, autonomic_actuator]],
    {ok, {Flags, Children}}.
