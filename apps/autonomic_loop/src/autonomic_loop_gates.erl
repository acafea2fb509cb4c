%%% @doc The safety gates, pure: each operation passes every gate before it acts, else it waits
%%% (cooldown) or pauses for human review (every other gate). Each result is recorded by the
%%% operation as a `loop.gate' receipt.
%%%
%%% | gate | passes when | policy key (`gates') |
%%% |---|---|---|
%%% | `error_budget' | the operation's estimated downtime is at most `error_budget' of what is left of the SLO's error budget (`(1 - availability) * window_ms' minus the downtime already spent in the window) | `error_budget' |
%%% | `blast_radius' | the services the operation disrupts (restarts), with those depending on them, are at most `blast_radius' of the cluster's services | `blast_radius' |
%%% | `cooldown' | the last operation on the target ended at least `cooldown_ms' ago (else: wait the rest) | `cooldown_ms' |
%%% | `capacity_headroom' | the spare capacity of the nodes that take the work is at least `capacity_headroom' (unknown: passes, said so) | `capacity_headroom' |
%%% | `incident_rate' | the incidents of the last minute are at most `max_incident_rate' | `max_incident_rate' |
%%% | `consecutive_failures' | the target's consecutive failed operations are at most `max_consecutive_failures' ("more than 2 consecutive failures: human review") | `max_consecutive_failures' |
-module(autonomic_loop_gates).

-export([evaluate/2, decision/1, names/0]).

-export_type([context/0, result/0]).

-type context() :: #{now := integer(), last_end := integer() | undefined,
                     consecutive_failures := non_neg_integer(), incidents_last_minute := non_neg_integer(),
                     budget_ms := number(), spent_ms := number(), estimated_downtime_ms := number(),
                     disrupted := non_neg_integer(), services := non_neg_integer(),
                     headroom := float() | undefined}.
-type result() :: {atom(), pass | {wait, non_neg_integer()} | {fail, term()}}.

%% @doc The gates, in the order they are evaluated.
-spec names() -> [atom()].
names() ->
    [consecutive_failures, cooldown, incident_rate, error_budget, blast_radius, capacity_headroom].

%% @doc Every gate's result for an operation in `Context' under the policy's `gates'.
-spec evaluate(context(), map()) -> [result()].
evaluate(C, Gates) ->
    [{G, gate(G, C, Gates)} || G <- names()].

gate(consecutive_failures, #{consecutive_failures := F}, #{max_consecutive_failures := Max}) ->
    case F > Max of
        true -> {fail, {consecutive_failures, F, Max}};
        false -> pass
    end;
gate(cooldown, #{last_end := undefined}, _) ->
    pass;
gate(cooldown, #{last_end := End, now := Now}, #{cooldown_ms := Cool}) ->
    case Now - End of
        Since when Since >= Cool -> pass;
        Since -> {wait, Cool - Since}
    end;
gate(incident_rate, #{incidents_last_minute := N}, #{max_incident_rate := Max}) ->
    case N > Max of
        true -> {fail, {incident_rate, N, Max}};
        false -> pass
    end;
gate(error_budget, #{budget_ms := Budget, spent_ms := Spent, estimated_downtime_ms := Est}, #{error_budget := Share}) ->
    Left = max(0, Budget - Spent),
    case Est =< Share * Left of
        true -> pass;
        false -> {fail, {error_budget, #{estimated_downtime_ms => Est, budget_left_ms => Left, share => Share}}}
    end;
gate(blast_radius, #{disrupted := D, services := Total}, #{blast_radius := Max}) ->
    case Total =:= 0 orelse D / Total =< Max of
        true -> pass;
        false -> {fail, {blast_radius, D, Total, Max}}
    end;
gate(capacity_headroom, #{headroom := undefined}, _) ->
    pass;
gate(capacity_headroom, #{headroom := H}, #{capacity_headroom := Min}) ->
    case H >= Min of
        true -> pass;
        false -> {fail, {capacity_headroom, H, Min}}
    end.

%% @doc What the results mean together: `pass', `{wait, Ms}' (only cooldowns, the longest), or
%% `{review, Failed}' (any gate failed: pause for human review).
-spec decision([result()]) -> pass | {wait, non_neg_integer()} | {review, [result()]}.
decision(Results) ->
    case [R || {_, {fail, _}} = R <- Results] of
        [_ | _] = Failed -> {review, Failed};
        [] ->
            case [Ms || {_, {wait, Ms}} <- Results] of
                [] -> pass;
                Waits -> {wait, lists:max(Waits)}
            end
    end.
