%%% @doc The autonomic application: loads the resilience policy, applies the configured governor
%%% thresholds, starts the top supervisor, declares the core metrics and installs the policy. A
%%% bad configuration stops the start with a reason that names the key (and, for the policy,
%%% `{invalid_config, policy, Problems}' with every problem).
-module(autonomic_app).
-behaviour(application).

-export([start/2, stop/1]).

-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    %% The resilience policy first: an invalid one stops the start with every problem listed.
    case autonomic_policy:configured() of
        {ok, Policy, Source} ->
            case start_core() of
                {ok, Pid} ->
                    ok = autonomic_policy:install(Policy, Source),
                    {ok, Pid};
                Error ->
                    Error
            end;
        {error, Problems} ->
            logger:error("autonomic: the configured resilience policy is invalid:~n~ts",
                         [autonomic_policy:format_problems(Problems)], #{domain => [autonomic, policy]}),
            {error, {invalid_config, policy, Problems}}
    end.

start_core() ->
    Thresholds = application:get_env(autonomic, governor_thresholds, #{}),
    case autonomic:configure_governor(Thresholds) of
        ok ->
            case autonomic_sup:start_link() of
                {ok, Pid} ->
                    ok = declare_metrics(),
                    {ok, Pid};
                Error ->
                    Error
            end;
        {error, Reason} ->
            {error, {invalid_config, governor_thresholds, Reason}}
    end.

-spec stop(term()) -> ok.
stop(_State) ->
    ok.

declare_metrics() ->
    ok = autonomic_metrics:declare(autonomic_events_total, counter, "Events published on this node, by type."),
    autonomic_metrics:register_collector(governor, fun governor_metrics/0).

%% Scrape-time governor figures: tenants per state and the thresholds in force.
governor_metrics() ->
    ByState = autonomic:tenants_by_state(),
    Th = autonomic:governor_thresholds(),
    [
        {autonomic_governor_tenants, gauge, "Tenants per governor state on this node.",
            [{#{state => S}, N} || {S, N} <- lists:sort(maps:to_list(ByState))]},
        {autonomic_governor_threshold, gauge, "Governor thresholds in force (percent; sustain is a count).",
            [{#{threshold => K}, V} || {K, V} <- lists:sort(maps:to_list(Th))]}
    ].
