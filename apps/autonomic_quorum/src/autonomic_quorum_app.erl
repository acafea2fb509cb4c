%%% @doc The quorum application: checks its configuration, declares its metrics and starts
%%% {@link autonomic_quorum_sup}. A bad key stops the start with `{invalid_config, Key, Value}'.
%%% Stopping it lowers the node's fence: a node the quorum manager no longer watches is not
%%% kept from acting.
-module(autonomic_quorum_app).
-behaviour(application).

-export([start/2, stop/1]).

-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    case quorum_config:validate() of
        ok ->
            ok = declare_metrics(),
            autonomic_quorum_sup:start_link();
        {error, _} = Error ->
            Error
    end.

-spec stop(term()) -> ok.
stop(_State) ->
    autonomic:set_fence(false).

declare_metrics() ->
    Metrics = [
        {autonomic_quorum_epoch, gauge, "Epoch of the membership this node holds."},
        {autonomic_quorum_members, gauge, "Members in the membership this node holds."},
        {autonomic_quorum_size, gauge, "Weight a majority of the members needs."},
        {autonomic_quorum_reachable, gauge, "Nodes running the quorum manager this node reaches, itself included."},
        {autonomic_quorum_have_quorum, gauge, "1 while this node has quorum (may act), else 0."},
        {autonomic_quorum_mode, gauge, "1 for the mode this node is in (normal, reconfiguring, minority)."},
        {autonomic_quorum_leader, gauge, "1 while this node holds the leader's global name."},
        {autonomic_quorum_reconfigurations_total, counter, "Membership proposals run from this node, by kind and result."},
        {autonomic_quorum_reconfiguration_seconds, histogram, "Time from proposal to commit of the changes this node committed."}
    ],
    lists:foreach(fun({N, T, H}) -> ok = autonomic_metrics:declare(N, T, H) end, Metrics).
