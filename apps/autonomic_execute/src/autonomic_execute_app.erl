%%% @doc The Execute toolkit application: checks its configuration, declares its metrics and
%%% scrape-time collectors, starts {@link autonomic_execute_sup} and installs the breakers of the
%%% `breakers' configuration key. A bad key stops the start with `{invalid_config, Key, Value}'.
-module(autonomic_execute_app).
-behaviour(application).

-export([start/2, prep_stop/1, stop/1]).

-define(COLLECTORS, [{execute_breakers, fun autonomic_breaker_server:metrics/0},
                     {execute_shed, fun autonomic_shed:metrics/0},
                     {execute_tenants, fun autonomic_bucket:metrics/0},
                     {execute_entitlements, fun autonomic_entitlements:metrics/0}]).

-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    case autonomic_execute_config:validate() of
        ok ->
            ok = declare_metrics(),
            case autonomic_execute_sup:start_link() of
                {ok, Pid} ->
                    maps:foreach(fun(Name, Opts) -> ok = autonomic_breaker:install(Name, Opts) end,
                                 autonomic_execute_config:get(breakers)),
                    {ok, Pid};
                Error ->
                    Error
            end;
        {error, _} = Error ->
            Error
    end.

-spec prep_stop(term()) -> term().
prep_stop(State) ->
    lists:foreach(fun({Id, _}) -> ok = autonomic_metrics:unregister_collector(Id) end, ?COLLECTORS),
    State.

-spec stop(term()) -> ok.
stop(_State) ->
    ok.

declare_metrics() ->
    Metrics = [
        {autonomic_actions_total, counter, "Actuator actions by kind and outcome (ok, error)."},
        {autonomic_rollbacks_total, counter, "Actuator rollbacks by kind of the action undone and outcome."},
        {autonomic_restarts_total, counter, "supervisor_controller restarts by type and outcome (ok, error, refused)."},
        {autonomic_restart_seconds, histogram, "Time of a successful supervisor_controller restart, by type."},
        {autonomic_breaker_transitions_total, counter, "Circuit breaker state changes."},
        {autonomic_degrade_level, gauge, "Degradation level in force: 0 normal, 1 degraded, 2 minimal, 3 emergency."},
        {autonomic_backend_failovers_total, counter, "Backend failovers."},
        {autonomic_escalations_total, counter, "Escalations by severity."},
        {autonomic_escalation_deliveries_total, counter, "Escalation deliveries by handler and outcome (ok, error)."},
        {autonomic_entitlement_transitions_total, counter, "Tenant lifecycle transitions by the state entered."}
    ],
    lists:foreach(fun({N, T, H}) -> ok = autonomic_metrics:declare(N, T, H) end, Metrics),
    lists:foreach(fun({Id, F}) -> ok = autonomic_metrics:register_collector(Id, F) end, ?COLLECTORS).
