%%% @doc The loop application: declares the loop's metrics and starts {@link autonomic_loop_sup}
%%% (the service registry and the coordinator process of this node).
-module(autonomic_loop_app).
-behaviour(application).

-export([start/2, stop/1]).

%% @doc Declares the metrics and starts the supervisor.
-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    ok = declare_metrics(),
    autonomic_loop_sup:start_link().

%% @doc Nothing to clean up: the supervisor stops the coordinator, which releases its name.
-spec stop(term()) -> ok.
stop(_State) ->
    ok.

declare_metrics() ->
    Phases = "{phase}: monitor, analyze, plan, gate, execute, verify, knowledge, total",
    Metrics = [
        {autonomic_loop_cycles_total, counter, "Cycles of the MAPE-K loop run on this node, by result."},
        {autonomic_loop_phase_seconds, {histogram, [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60]},
         ["Time of each phase of a cycle ", Phases, "."]},
        {autonomic_loop_operations_total, counter, "Operations that reached a final state, by strategy and outcome."},
        {autonomic_loop_operations_in_progress, gauge, "Operations not yet in a final state (coordinator only)."},
        {autonomic_loop_pending_reviews, gauge, "Operations paused for human review (coordinator only)."},
        {autonomic_loop_lock_oldest_seconds, gauge, "Age of the oldest operation lock held, 0 when none."},
        {autonomic_loop_is_coordinator, gauge, "1 on the node of the active coordinator, else 0."}
    ],
    lists:foreach(fun({N, T, H}) -> ok = autonomic_metrics:declare(N, T, H) end, Metrics),
    autonomic_metrics:set(autonomic_loop_is_coordinator, #{}, 0),
    autonomic_metrics:set(autonomic_loop_operations_in_progress, #{}, 0),
    autonomic_metrics:set(autonomic_loop_pending_reviews, #{}, 0),
    autonomic_metrics:set(autonomic_loop_lock_oldest_seconds, #{}, 0).
