%%% @doc The pure part of graceful degradation: the order of levels, the rules that choose a level
%%% from the monitor's resource sample, and the step function that raises the automatic level at
%%% once and lowers it one level per calm period ({@link autonomic_degrade} runs it).
%%%
%%% A rule is `#{metric := Metric, above := Number, level := degraded | minimal | emergency}': it
%%% fires when the sample's value of `Metric' is greater than `above'. Metrics, from
%%% `mape_k_resources:latest/0':
%%% <ul>
%%%   <li>`memory', `cpu', `processes', `ports', `atoms': percent of their limit
%%%       (`usage_percent');</li>
%%%   <li>`disk': the fullest mount, in percent;</li>
%%%   <li>`run_queue': processes and ports ready to run, all run queues;</li>
%%%   <li>`scheduler_utilization': in percent (0..100).</li>
%%% </ul>
%%% The target level of a sample is the highest level among the rules that fire, `normal' when
%%% none does (or the metric is missing from the sample).
-module(autonomic_degrade_rules).

-export([levels/0, rank/1, worse/2, valid_level/1, validate/1, target/2, step/4, metric/2]).

-export_type([level/0, rule/0, auto/0]).

-type level() :: normal | degraded | minimal | emergency.
-type rule() :: #{metric := atom(), above := number(), level := degraded | minimal | emergency}.
-type auto() :: #{level := level(), calm_since := integer() | undefined}.
%% The automatic level, and since when the samples have asked for a lower one.

-define(METRICS, [memory, cpu, processes, ports, atoms, disk, run_queue, scheduler_utilization]).

%% @doc The levels, from the least to the most degraded.
-spec levels() -> [level()].
levels() -> [normal, degraded, minimal, emergency].

%% @doc 0 for `normal' up to 3 for `emergency'.
-spec rank(level()) -> 0..3.
rank(normal) -> 0;
rank(degraded) -> 1;
rank(minimal) -> 2;
rank(emergency) -> 3.

%% @doc The more degraded of two levels.
-spec worse(level(), level()) -> level().
worse(A, B) ->
    case rank(A) >= rank(B) of
        true -> A;
        false -> B
    end.

%% @doc Whether `L' is a level.
-spec valid_level(term()) -> boolean().
valid_level(L) -> lists:member(L, levels()).

%% @doc Checks a list of rules.
-spec validate(term()) -> ok | {error, {invalid_rule, term()}}.
validate(Rules) when is_list(Rules) ->
    case [R || R <- Rules, not valid_rule(R)] of
        [] -> ok;
        [Bad | _] -> {error, {invalid_rule, Bad}}
    end;
validate(Other) ->
    {error, {invalid_rule, Other}}.

valid_rule(#{metric := M, above := A, level := L} = R) ->
    map_size(R) =:= 3 andalso lists:member(M, ?METRICS) andalso is_number(A)
        andalso lists:member(L, [degraded, minimal, emergency]);
valid_rule(_) ->
    false.

%% @doc The level the rules ask for in `Sample'.
-spec target([rule()], map()) -> level().
target(Rules, Sample) ->
    lists:foldl(
        fun(#{metric := M, above := A, level := L}, Acc) ->
            case metric(M, Sample) of
                V when is_number(V), V > A -> worse(L, Acc);
                _ -> Acc
            end
        end,
        normal, Rules).

%% @doc The value of a rule metric in a resource sample, or `undefined'.
-spec metric(atom(), map()) -> number() | undefined.
metric(disk, #{usage_percent := U}) ->
    case [V || {{disk, _}, V} <- maps:to_list(U), is_number(V)] of
        [] -> undefined;
        Vs -> lists:max(Vs)
    end;
metric(run_queue, #{run_queue := Q}) when is_number(Q) -> Q;
metric(scheduler_utilization, #{scheduler_utilization := U}) when is_number(U) -> U * 100;
metric(M, #{usage_percent := #{} = U}) ->
    case maps:get(M, U, undefined) of
        V when is_number(V) -> V;
        _ -> undefined
    end;
metric(_, _) ->
    undefined.

%% @doc One evaluation at time `Now' (milliseconds) with target level `Target': a higher target
%% is taken at once; a lower one, after `CalmMs' of samples asking for less than the current
%% level, lowers it by one level only, and the next step needs another calm period.
-spec step(auto(), level(), integer(), non_neg_integer()) -> auto().
step(#{level := Level} = Auto, Target, Now, CalmMs) ->
    case rank(Target) - rank(Level) of
        D when D > 0 ->
            #{level => Target, calm_since => undefined};
        0 ->
            Auto#{calm_since => undefined};
        _ ->
            case Auto of
                #{calm_since := undefined} ->
                    maybe_lower(Auto#{calm_since => Now}, Now, CalmMs);
                #{} ->
                    maybe_lower(Auto, Now, CalmMs)
            end
    end.

maybe_lower(#{level := Level, calm_since := Since} = Auto, Now, CalmMs) ->
    case Now - Since >= CalmMs of
        true -> #{level => lists:nth(rank(Level), levels()), calm_since => Now};
        false -> Auto
    end.
