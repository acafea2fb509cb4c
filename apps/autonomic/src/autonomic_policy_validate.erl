%%% @doc The one validator of the declarative resilience policy: checks a policy given as Erlang
%%% terms (from `policy.config', the application environment, {@link autonomic_policy:set/1}, or
%%% the Turtle import, which produces the same terms) and normalizes it.
%%%
%%% `validate(Term)' returns `{ok, Policy}', the normalized policy with every default filled in,
%%% or `{error, Problems}' listing every problem, not only the first: one problem per bad field,
%%% per unknown key, per bad list element, per broken cross-field rule. A problem is
%%% `#{field => [Key], value => Value, why => binary()}': the path of the field in the policy,
%%% the value given, and why it is refused. A cross-field rule is only checked when each field
%%% it involves is valid, so one mistake is one problem.
%%%
%%% The model, its defaults and every constraint are documented in README.md ("Policy") and in
%%% {@link autonomic_policy}; the tables here are the reference. A normalized policy is itself a
%%% valid input and normalizes to itself.
-module(autonomic_policy_validate).

-export([validate/1, defaults/0]).
-export([failure_types/0, strategies/0, severities/0, scenarios/0, top_keys/0]).
-export([planner_keys/0, max_timer_ms/0]).

-export_type([policy/0, problem/0, path/0]).

-type path() :: [atom() | binary()].
-type problem() :: #{field := path(), value := term(), why := binary(),
                     line => pos_integer(), column => pos_integer()}.
-type policy() :: #{name := binary(),
                    target_system := binary() | undefined,
                    slo := map(),
                    failure_modes := #{atom() => map()},
                    planner := map(),
                    gates := map(),
                    loop := map(),
                    chaos := map()}.

%% The longest time an Erlang timer takes (erlang:send_after/3): every duration the loop or the
%% chaos schedule may wait on must fit one.
-define(MAX_TIMER_MS, 4294967295).
%% SLO windows are counted, never waited on: up to a year.
-define(MAX_WINDOW_MS, 31536000000).
%% The planner's own bounds (autonomic_planner_builtin, planner/input.rs).
-define(MAX_INTEGER, 9007199254740992).
-define(MAX_RECOVERY_MS, 1.0e12).
-define(MAX_SLO_BUDGET_MS, 1.0e15).
-define(MAX_STEP_MS, 1.0e9).
-define(MAX_LABEL_BYTES, 255).
-define(MAX_SEED, 18446744073709551615).
%% A percentage given as {percent, P} is kept to 10 decimal places of the percentage, so that
%% {percent, 99.9} is exactly the float 0.999 (99.9 / 100 is 0.9990000000000001).
-define(PERCENT_SCALE, 1.0e10).

%%% Vocabulary

%% @doc Every failure type a policy may name. `default' applies to failure types the analysis
%% produces that are not listed here.
-spec failure_types() -> [atom()].
failure_types() ->
    lists:sort(maps:keys(failure_mode_defaults())).

%% @doc The recovery strategies (DESIGN.md section 3).
-spec strategies() -> [atom()].
strategies() ->
    [backend_failover, escalate, graceful_degradation, load_shedding, pause,
     quorum_reconfiguration, supervisor_restart, throttle].

-spec severities() -> [atom()].
severities() ->
    [low, medium, high, critical].

%% @doc The chaos scenarios (issue 11).
-spec scenarios() -> [atom()].
scenarios() ->
    [backend_error, backend_latency, cpu_saturation, memory_pressure, network_partition,
     node_kill, process_kill].

-spec top_keys() -> [atom()].
top_keys() ->
    [name, target_system, slo, failure_modes, planner, gates, loop, chaos].

%% @doc The keys of the planner's `planner_policy' (autonomic_planner_builtin's POLICY_KEYS).
-spec planner_keys() -> [atom()].
planner_keys() ->
    [allowed, blast_radius_limit, default_recovery_ms, degrade_impact, quorum_size,
     shed_percent, slo_budget_ms, step_ms, throttle_percent].

-spec max_timer_ms() -> pos_integer().
max_timer_ms() -> ?MAX_TIMER_MS.

%% Per failure type: {strategies in order of preference, detection_ms, recovery_ms, severity}.
%% The strategies of the planner's types are the planner's own defaults, so the default policy
%% plans exactly as the planner does without one.
failure_mode_defaults() ->
    #{backend_down => {[backend_failover, graceful_degradation, escalate], 10000, 20000, medium},
      cpu_saturation => {[throttle, load_shedding, escalate], 10000, 30000, medium},
      default => {[supervisor_restart, throttle, escalate], 10000, 30000, medium},
      disk_full => {[graceful_degradation, escalate], 10000, 60000, high},
      invalid_config => {[escalate], 5000, 900000, high},
      memory_leak => {[supervisor_restart, escalate], 30000, 60000, high},
      network_issue => {[backend_failover, throttle, escalate], 10000, 30000, medium},
      network_partition => {[quorum_reconfiguration, pause, escalate], 15000, 30000, critical},
      node_down => {[quorum_reconfiguration, backend_failover, escalate], 5000, 30000, critical},
      node_suspected => {[backend_failover, escalate], 5000, 30000, medium},
      overload => {[throttle, load_shedding, graceful_degradation, escalate], 5000, 10000, medium},
      process_crash => {[supervisor_restart, escalate], 1000, 5000, high},
      resource_exhausted => {[supervisor_restart, load_shedding, throttle, escalate], 5000, 30000, high},
      service_crash => {[supervisor_restart, backend_failover, escalate], 1000, 10000, high},
      service_unavailable => {[backend_failover, supervisor_restart, escalate], 5000, 20000, high},
      tenant_flood => {[throttle, load_shedding, escalate], 1000, 10000, medium},
      unknown => {[escalate], 10000, 900000, medium}}.

default_mode({Strategies, Detection, Recovery, Severity}) ->
    #{recovery_strategies => Strategies, detection_ms => Detection, recovery_ms => Recovery,
      severity => Severity}.

%% The planner's default recovery time per strategy (autonomic_planner_builtin).
default_recovery_ms() ->
    #{backend_failover => 5000.0, escalate => 900000.0, graceful_degradation => 1000.0,
      load_shedding => 1000.0, pause => 500.0, quorum_reconfiguration => 10000.0,
      supervisor_restart => 2000.0, throttle => 500.0}.

%%% Field specifications: {Key, Check, Default}. A check answers {ok, Normalized},
%%% {error, Why}, or {errors, [{SubPath, Value, Why}]}: several problems, each at the field's path
%%% followed by SubPath (a map's key, or nothing for a list's elements).

slo_spec() ->
    [{availability, fraction(0.5, closed, 1.0, open), 0.999},
     {mttd_ms, ms(1, ?MAX_TIMER_MS), 10000},
     {mttr_ms, ms(1, ?MAX_TIMER_MS), 30000},
     {max_degradation, fraction(0.0, closed, 1.0, closed), 0.2},
     {recovery_success, fraction(0.0, open, 1.0, closed), 0.95},
     {window_ms, ms(1, ?MAX_WINDOW_MS), 2592000000}].

mode_spec(Type) ->
    Defaults = default_mode(maps:get(Type, failure_mode_defaults())),
    [{recovery_strategies, fun strategy_list/1, maps:get(recovery_strategies, Defaults)},
     {detection_ms, ms(1, ?MAX_TIMER_MS), maps:get(detection_ms, Defaults)},
     {recovery_ms, ms(1, ?MAX_TIMER_MS), maps:get(recovery_ms, Defaults)},
     {severity, one_of(severities(), <<"a severity">>), maps:get(severity, Defaults)}].

planner_spec() ->
    [{slo_budget_ms, number(0.0, open, ?MAX_SLO_BUDGET_MS, closed, <<"milliseconds">>), 300000.0},
     {blast_radius_limit, int(0, ?MAX_INTEGER, <<"services">>), 100},
     {quorum_size, fun quorum_size/1, majority},
     {default_recovery_ms, fun strategy_times/1, default_recovery_ms()},
     {step_ms, number(0.0, closed, ?MAX_STEP_MS, closed, <<"milliseconds">>), 100.0},
     {shed_percent, int(1, 100, <<"percent">>), 25},
     {throttle_percent, int(1, 100, <<"percent">>), 50},
     {degrade_impact, fraction(0.0, closed, 1.0, closed), 0.3},
     %% Derived from the failure modes; checked against them in planner/3.
     {allowed, fun(V) -> {ok, V} end, derived}].

gates_spec() ->
    [{error_budget, fraction(0.0, open, 1.0, closed), 0.5},
     {blast_radius, fraction(0.0, open, 1.0, closed), 0.5},
     {cooldown_ms, ms(0, ?MAX_TIMER_MS), 10000},
     {capacity_headroom, fraction(0.0, closed, 1.0, open), 0.2},
     {max_incident_rate, number(0.0, open, 1.0e6, closed, <<"incidents per minute">>), 60},
     {max_consecutive_failures, int(1, 1000, <<"failures">>), 2}].

loop_spec() ->
    [{interval_ms, ms(1, ?MAX_TIMER_MS), 10000},
     {max_cycle_ms, ms(1, ?MAX_TIMER_MS), 60000},
     {min_confidence, fraction(0.0, closed, 1.0, closed), 0.7},
     {lock_ttl_ms, ms(1, ?MAX_TIMER_MS), 60000}].

chaos_spec() ->
    [{enabled, fun boolean/1, false},
     {interval_ms, ms(1, ?MAX_TIMER_MS), 5000},
     {duration_ms, fun chaos_duration/1, 120000},
     {max_concurrent, int(1, 1000, <<"faults at once">>), 1},
     {pause_on_alert, fun boolean/1, true},
     {safe_mode, fun boolean/1, true},
     {require_approval, fun boolean/1, false},
     {seed, fun seed/1, random},
     {weights, fun weights/1, maps:from_list([{S, 1} || S <- scenarios()])}].

%%% API

%% @doc The default policy: what an empty policy normalizes to.
-spec defaults() -> policy().
defaults() ->
    {ok, Policy} = validate(#{}),
    Policy.

%% @doc Validates and normalizes a policy. Every problem is listed.
-spec validate(term()) -> {ok, policy()} | {error, [problem()]}.
validate(Term) when is_map(Term) ->
    {Top, Status, Ps0} = fields([], Term,
                                [{name, fun text/1, <<"default">>},
                                 {target_system, fun target_system/1, undefined},
                                 {slo, fun(V) -> {ok, V} end, #{}},
                                 {failure_modes, fun(V) -> {ok, V} end, #{}},
                                 {planner, fun(V) -> {ok, V} end, #{}},
                                 {gates, fun(V) -> {ok, V} end, #{}},
                                 {loop, fun(V) -> {ok, V} end, #{}},
                                 {chaos, fun(V) -> {ok, V} end, #{}}]),
    _ = Status,
    {Slo, Ps1} = slo(maps:get(slo, Top)),
    {Modes, Ps2} = failure_modes(maps:get(failure_modes, Top)),
    {Planner, Ps3} = planner(maps:get(planner, Top), Modes),
    {Gates, Ps4} = section([gates], maps:get(gates, Top), gates_spec(), fun(M, _) -> {M, []} end),
    {Loop, Ps5} = section([loop], maps:get(loop, Top), loop_spec(), fun loop_rules/2),
    {Chaos, Ps6} = section([chaos], maps:get(chaos, Top), chaos_spec(), fun chaos_rules/2),
    case Ps0 ++ Ps1 ++ Ps2 ++ Ps3 ++ Ps4 ++ Ps5 ++ Ps6 of
        [] ->
            {ok, #{name => maps:get(name, Top), target_system => maps:get(target_system, Top),
                   slo => Slo, failure_modes => Modes, planner => Planner, gates => Gates,
                   loop => Loop, chaos => Chaos}};
        Problems ->
            {error, Problems}
    end;
validate(Term) ->
    {error, [problem([], Term, <<"a policy is a map (#{slo => ..., failure_modes => ...}); "
                                 "the empty map is the default policy">>)]}.

%%% Sections

%% A section that may be missing (defaults) or not a map (one problem, defaults).
section(Path, Given, Spec, Rules) when is_map(Given) ->
    {Values, Status, Ps} = fields(Path, Given, Spec),
    {Values1, RulePs} = Rules(Values, Status),
    {Values1, Ps ++ RulePs};
section(Path, Given, Spec, _Rules) ->
    {Values, _, _} = fields(Path, #{}, Spec),
    {Values, [problem(Path, Given, <<"must be a map">>)]}.

%% Checks each field of a spec against the map given; unknown keys are problems. Returns the
%% normalized values (defaults for missing or invalid fields), each field's status
%% (given | default | invalid) and the problems.
fields(Path, Given, Spec) ->
    Known = [K || {K, _, _} <- Spec],
    Unknown = [problem(Path ++ [K], maps:get(K, Given),
                       iolist_to_binary(["unknown key (known: ", join(Known), ")"]))
               || K <- lists:sort(maps:keys(Given)), not lists:member(K, Known)],
    {Values, Status, Ps} =
        lists:foldl(
          fun({K, Check, Default}, {VAcc, SAcc, PAcc}) ->
                  case maps:find(K, Given) of
                      error ->
                          {VAcc#{K => Default}, SAcc#{K => default}, PAcc};
                      {ok, V} ->
                          case Check(V) of
                              {ok, N} ->
                                  {VAcc#{K => N}, SAcc#{K => given}, PAcc};
                              {error, Why} ->
                                  {VAcc#{K => Default}, SAcc#{K => invalid},
                                   [problem(Path ++ [K], V, Why) | PAcc]};
                              {errors, List} ->
                                  New = [problem(Path ++ [K | Sub], Bad, Why) || {Sub, Bad, Why} <- List],
                                  {VAcc#{K => Default}, SAcc#{K => invalid},
                                   lists:reverse(New, PAcc)}
                          end
                  end
          end, {#{}, #{}, []}, Spec),
    {Values, Status, Unknown ++ lists:reverse(Ps)}.

slo(Given) ->
    section([slo], Given, slo_spec(), fun slo_rules/2).

slo_rules(#{mttd_ms := D, mttr_ms := R} = M, Status) ->
    {M, rule(Status, [mttd_ms, mttr_ms], D =< R, [slo, mttd_ms], D,
             io_lib:format("must not exceed mttr_ms (~b~s): recovery time counts from the failure, "
                           "detection included", [R, default_note(Status, mttr_ms)]))}.

loop_rules(#{interval_ms := I, max_cycle_ms := C, lock_ttl_ms := L} = M, Status) ->
    {M, rule(Status, [interval_ms, max_cycle_ms], C >= I, [loop, max_cycle_ms], C,
             io_lib:format("must be at least interval_ms (~b~s): a cycle may take its whole interval",
                           [I, default_note(Status, interval_ms)]))
        ++ rule(Status, [max_cycle_ms, lock_ttl_ms], L >= C, [loop, lock_ttl_ms], L,
                io_lib:format("must be at least max_cycle_ms (~b~s): an operation's lock must not "
                              "expire while its cycle may still run", [C, default_note(Status, max_cycle_ms)]))}.

chaos_rules(#{interval_ms := I, duration_ms := D} = M, Status) ->
    {M, rule(Status, [interval_ms, duration_ms], D =:= infinity orelse D >= I, [chaos, duration_ms], D,
             io_lib:format("must be at least interval_ms (~b~s), or no fault is ever injected",
                           [I, default_note(Status, interval_ms)]))}.

%% A cross-field rule: checked only when every field in `Keys' is valid. It is reported at
%% `Field', and the message says when that field's value is the default.
rule(Status, Keys, Holds, Field, Value, Why) ->
    case lists:any(fun(K) -> maps:get(K, Status) =:= invalid end, Keys) orelse Holds of
        true ->
            [];
        false ->
            Prefix = case maps:get(lists:last(Field), Status) of
                         default -> "(the default) ";
                         _ -> ""
                     end,
            [problem(Field, Value, iolist_to_binary([Prefix, Why]))]
    end.

default_note(Status, Key) ->
    case maps:get(Key, Status) of
        default -> ", the default";
        _ -> ""
    end.

failure_modes(Given) when is_map(Given) ->
    Defaults = failure_mode_defaults(),
    Types = failure_types(),
    {Given1, KeyPs} =
        maps:fold(fun(K, V, {Acc, Ps}) ->
                          case maps:is_key(K, Defaults) of
                              true -> {Acc#{K => V}, Ps};
                              false -> {Acc, [problem([failure_modes, K], V, unknown(<<"failure type">>, Types)) | Ps]}
                          end
                  end, {#{}, []}, Given),
    {Modes, ModePs} =
        lists:foldl(fun(Type, {Acc, Ps}) ->
                            {Mode, P} = case maps:find(Type, Given1) of
                                            {ok, M} -> mode(Type, M);
                                            error -> {default_mode(maps:get(Type, Defaults)), []}
                                        end,
                            {Acc#{Type => Mode}, Ps ++ P}
                    end, {#{}, []}, Types),
    {Modes, lists:sort(fun problem_order/2, KeyPs) ++ ModePs};
failure_modes(Given) ->
    {Modes, _} = failure_modes(#{}),
    {Modes, [problem([failure_modes], Given, <<"must be a map from failure type to failure mode">>)]}.

mode(Type, Given) ->
    section([failure_modes, Type], Given, mode_spec(Type),
            fun(#{detection_ms := D, recovery_ms := R} = M, Status) ->
                    {M, rule(Status, [detection_ms, recovery_ms], D =< R,
                             [failure_modes, Type, detection_ms], D,
                             io_lib:format("must not exceed recovery_ms (~b~s): recovery time counts from "
                                           "the failure, detection included",
                                           [R, default_note(Status, recovery_ms)]))}
            end).

%% The planner section. `allowed' is derived from the failure modes (each mode's strategies);
%% given, it must agree with them, so that a normalized policy validates again.
planner(Given, Modes) ->
    Derived = maps:map(fun(_, #{recovery_strategies := S}) -> S end, Modes),
    {P, Ps} = section([planner], Given, planner_spec(),
                      fun(M, _) -> {M, allowed_rule(maps:get(allowed, M), Derived)} end),
    P1 = P#{allowed := Derived},
    P2 = case P1 of
             #{quorum_size := majority} -> maps:remove(quorum_size, P1);
             _ -> P1
         end,
    {P2, Ps}.

allowed_rule(derived, _) ->
    [];
allowed_rule(Given, Derived) when is_map(Given) ->
    Types = failure_types(),
    lists:filtermap(
      fun({K, S}) ->
              case Derived of
                  #{K := V} when V =:= S ->
                      false;
                  #{K := V} ->
                      {true, problem([planner, allowed, K], S,
                                     iolist_to_binary(io_lib:format(
                                       "disagrees with failure_modes.~s.recovery_strategies (~w): the "
                                       "planner's allowed strategies are derived from the failure modes, "
                                       "set them there", [K, V])))};
                  _ ->
                      {true, problem([planner, allowed, K], S, unknown(<<"failure type">>, Types))}
              end
      end, lists:sort(maps:to_list(Given)));
allowed_rule(Given, _) ->
    [problem([planner, allowed], Given,
             <<"must be a map; it is derived from failure_modes: set the strategies there">>)].

%%% Checks

text(V) when is_binary(V) ->
    case byte_size(V) >= 1 andalso byte_size(V) =< ?MAX_LABEL_BYTES
        andalso unicode:characters_to_binary(V) =:= V of
        true -> {ok, V};
        false -> {error, <<"must be UTF-8 text of 1 to 255 bytes">>}
    end;
text(V) when is_list(V) ->
    case io_lib:printable_unicode_list(V) of
        true -> text(unicode:characters_to_binary(V));
        false -> {error, <<"must be text (a binary or a string)">>}
    end;
text(_) ->
    {error, <<"must be text (a binary or a string)">>}.

target_system(undefined) -> {ok, undefined};
target_system(V) -> text(V).

boolean(V) when is_boolean(V) -> {ok, V};
boolean(_) -> {error, <<"must be true or false">>}.

%% Whole milliseconds in Lo..Hi.
ms(Lo, Hi) ->
    Why = iolist_to_binary(io_lib:format("must be a whole number of milliseconds from ~b to ~b~s",
                                         [Lo, Hi, case Hi of
                                                      ?MAX_TIMER_MS -> " (the longest Erlang timer)";
                                                      _ -> ""
                                                  end])),
    fun(V) when is_integer(V), V >= Lo, V =< Hi -> {ok, V};
       (_) -> {error, Why}
    end.

int(Lo, Hi, Unit) ->
    Why = iolist_to_binary(io_lib:format("must be an integer from ~b to ~b (~s)", [Lo, Hi, Unit])),
    fun(V) when is_integer(V), V >= Lo, V =< Hi -> {ok, V};
       (_) -> {error, Why}
    end.

%% A number in a range, kept as given (integer or float).
number(Lo, LoKind, Hi, HiKind, Unit) ->
    Why = iolist_to_binary(["must be a number ", range_text(Lo, LoKind, Hi, HiKind), " (", Unit, ")"]),
    fun(V) when is_number(V) ->
            case in(V, Lo, LoKind, Hi, HiKind) of
                true -> {ok, V};
                false -> {error, Why}
            end;
       (_) -> {error, Why}
    end.

%% A fraction, given as a number or as {percent, P}; normalized to a float.
fraction(Lo, LoKind, Hi, HiKind) ->
    Why = iolist_to_binary(["must be a fraction ", range_text(Lo, LoKind, Hi, HiKind),
                            " (or {percent, P} with P ", range_text(Lo * 100, LoKind, Hi * 100, HiKind), ")"]),
    fun(V) ->
            F = case V of
                    N when is_number(N) -> N * 1.0;
                    {percent, P} when is_number(P), abs(P) =< 1.0e9 -> round(P * ?PERCENT_SCALE) / (100 * ?PERCENT_SCALE);
                    _ -> bad
                end,
            case is_float(F) andalso in(F, Lo, LoKind, Hi, HiKind) of
                true -> {ok, F};
                false -> {error, Why}
            end
    end.

in(V, Lo, LoKind, Hi, HiKind) ->
    AboveLo = case LoKind of closed -> V >= Lo; open -> V > Lo end,
    BelowHi = case HiKind of closed -> V =< Hi; open -> V < Hi end,
    AboveLo andalso BelowHi.

%% An interval: [0.5, 1) includes 0.5 and excludes 1.
range_text(Lo, LoKind, Hi, HiKind) ->
    ["in ", case LoKind of closed -> "["; open -> "(" end, num_text(Lo), ", ", num_text(Hi),
     case HiKind of closed -> "]"; open -> ")" end].

num_text(N) when N == trunc(N), abs(N) < 1.0e15 -> integer_to_list(trunc(N));
num_text(N) -> float_to_list(N, [short]).

one_of(Allowed, What) ->
    fun(V) ->
            case lists:member(V, Allowed) of
                true -> {ok, V};
                false -> {error, unknown(What, Allowed)}
            end
    end.

unknown(What, Allowed) ->
    iolist_to_binary(["unknown ", What, " (known: ", join(Allowed), ")"]).

%% A non-empty list of distinct known strategies, in order of preference.
strategy_list(L) when is_list(L), L =/= [] ->
    case proper_length(L) of
        false ->
            {error, <<"must be a list of strategies">>};
        _ ->
            Known = strategies(),
            {_, Bad} = lists:foldl(
                         fun(S, {Seen, Acc}) ->
                                 case {lists:member(S, Known), lists:member(S, Seen)} of
                                     {false, _} -> {Seen, [{[], S, unknown(<<"strategy">>, Known)} | Acc]};
                                     {true, true} -> {Seen, [{[], S, <<"listed twice">>} | Acc]};
                                     {true, false} -> {[S | Seen], Acc}
                                 end
                         end, {[], []}, L),
            case Bad of
                [] -> {ok, L};
                _ -> {errors, lists:reverse(Bad)}
            end
    end;
strategy_list([]) ->
    {error, <<"must list at least one strategy (escalate hands the failure to a human)">>};
strategy_list(_) ->
    {error, <<"must be a list of strategies, in order of preference">>}.

proper_length(L) ->
    try length(L) catch error:badarg -> false end.

%% Per strategy, the recovery time the planner assumes when the knowledge base has none;
%% merged over the planner's defaults.
strategy_times(M) when is_map(M) ->
    Known = strategies(),
    Bad = lists:flatmap(
            fun({S, Ms}) ->
                    case lists:member(S, Known) of
                        false -> [{[S], Ms, unknown(<<"strategy">>, Known)}];
                        true when is_number(Ms), Ms >= 0, Ms =< ?MAX_RECOVERY_MS -> [];
                        true -> [{[S], Ms, <<"must be a number of milliseconds from 0 to 1.0e12">>}]
                    end
            end, lists:sort(maps:to_list(M))),
    case Bad of
        [] -> {ok, maps:merge(default_recovery_ms(), M)};
        _ -> {errors, Bad}
    end;
strategy_times(_) ->
    {error, <<"must be a map from strategy to milliseconds">>}.

quorum_size(majority) -> {ok, majority};
quorum_size(N) when is_integer(N), N >= 1, N =< ?MAX_INTEGER -> {ok, N};
quorum_size(_) -> {error, <<"must be majority (a majority of the topology's nodes) or an integer >= 1">>}.

chaos_duration(infinity) -> {ok, infinity};
chaos_duration(V) ->
    (ms(1, ?MAX_TIMER_MS))(V).

seed(random) -> {ok, random};
seed(N) when is_integer(N), N >= 0, N =< ?MAX_SEED -> {ok, N};
seed(_) -> {error, <<"must be random or an integer from 0 to 2^64 - 1">>}.

%% Relative weight per scenario; scenarios not listed are never chosen. At least one positive.
weights(M) when is_map(M) ->
    Known = scenarios(),
    Bad = lists:flatmap(
            fun({S, W}) ->
                    case lists:member(S, Known) of
                        false -> [{[S], W, unknown(<<"scenario">>, Known)}];
                        true when is_number(W), W >= 0, W =< 1.0e6 -> [];
                        true -> [{[S], W, <<"must be a number from 0 to 1000000 (a relative weight)">>}]
                    end
            end, lists:sort(maps:to_list(M))),
    Full = maps:merge(maps:from_list([{S, 0} || S <- Known]), M),
    case Bad of
        [] ->
            case lists:any(fun(W) -> W > 0 end, maps:values(Full)) of
                true -> {ok, Full};
                false -> {error, <<"no scenario has a positive weight">>}
            end;
        _ ->
            {errors, Bad}
    end;
weights(_) ->
    {error, <<"must be a map from scenario to weight">>}.

%%% Problems

problem(Field, Value, Why) ->
    #{field => Field, value => Value, why => Why}.

problem_order(#{field := A}, #{field := B}) -> A =< B.

join(Atoms) ->
    lists:join(", ", [atom_to_list(A) || A <- Atoms]).
