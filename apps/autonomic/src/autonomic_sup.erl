%%% @doc Top supervisor of the autonomic application. The governors themselves live in the NIF
%%% and need no process. Children start in dependency order: the metrics table and the event bus
%%% first, since everything else reports through them.
-module(autonomic_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Flags = #{strategy => one_for_one, intensity => 5, period => 10},
    Children = [
        #{id => autonomic_metrics, start => {autonomic_metrics, start_link, []}},
        #{id => autonomic_events, start => {pg, start_link, [autonomic_events:scope()]}},
        %% Owns the default `audit' ledger; its shutdown waits for appends in flight to be durable.
        #{id => autonomic_ledger_owner, start => {autonomic_ledger_owner, start_link, []}, shutdown => 30000},
        %% The knowledge base's owner and its pg scope (autonomic_kb_sup, rest_for_one).
        #{id => autonomic_kb_sup, start => {autonomic_kb_sup, start_link, []}, type => supervisor},
        #{id => autonomic_planner_sup, start => {autonomic_planner_sup, start_link, []}, type => supervisor}
    ],
    {ok, {Flags, Children}}.
