%%% @doc PropEr: any valid policy round-trips (normalize(normalize(P)) == normalize(P)), and one
%%% bad value put anywhere in a valid policy is reported as exactly one problem at its field.
-module(autonomic_policy_prop_tests).

-include_lib("proper/include/proper.hrl").
-include_lib("eunit/include/eunit.hrl").

-define(V, autonomic_policy_validate).

round_trip_test_() ->
    {timeout, 120,
     ?_assert(proper:quickcheck(prop_normalize_is_idempotent(), [{numtests, 1000}, {to_file, user}]))}.

one_bad_value_test_() ->
    {timeout, 120,
     ?_assert(proper:quickcheck(prop_one_bad_value_is_one_problem(), [{numtests, 1000}, {to_file, user}]))}.

%%% Properties

prop_normalize_is_idempotent() ->
    ?FORALL(Given, policy(),
            case ?V:validate(Given) of
                {ok, P} -> ?V:validate(P) =:= {ok, P};
                {error, Problems} -> ?WHENFAIL(io:format("valid input refused: ~p~n", [Problems]), false)
            end).

prop_one_bad_value_is_one_problem() ->
    ?FORALL({Given, {Path, Bad}}, {policy(), corruption()},
            begin
                Result = ?V:validate(put_in(Given, Path, Bad)),
                ?WHENFAIL(io:format("~p = ~p gave ~p~n", [Path, Bad, Result]),
                          case Result of
                              {error, [#{field := Path, value := Bad, why := Why}]} -> is_binary(Why);
                              _ -> false
                          end)
            end).

%%% Generators of valid policies (cross-field rules hold by construction)

policy() ->
    ?LET(Sections, sublist([{name, text()}, {target_system, oneof([undefined, text()])},
                            {slo, slo()}, {failure_modes, failure_modes()}, {planner, planner()},
                            {gates, gates()}, {loop, loop()}, {chaos, chaos()}]),
         maps:from_list(Sections)).

sublist(L) ->
    ?LET(Keep, vector(length(L), boolean()), [X || {X, true} <- lists:zip(L, Keep)]).

optional(Pairs) ->
    ?LET(L, sublist(Pairs), maps:from_list(L)).

text() ->
    oneof([<<"prod">>, <<"jobs-cluster">>, "staging", <<"ünïcode"/utf8>>]).

%% A fraction in [Lo, Hi) or [Lo, Hi], as a float, an integer when whole, or {percent, P}.
fraction(Lo, Hi) ->
    ?LET(F, float(Lo, Hi), oneof([F, {percent, F * 100}])).

sorted_ms(N, Max) ->
    ?LET(L, vector(N, integer(1, Max)), lists:sort(L)).

slo() ->
    ?LET({Times, Rest}, {oneof([none, sorted_ms(2, 600000)]),
                         optional([{availability, fraction(0.5, 0.9999)},
                                   {max_degradation, fraction(0.0, 1.0)},
                                   {recovery_success, fraction(0.01, 1.0)},
                                   {window_ms, integer(1, 31536000000)}])},
         case Times of
             none -> Rest;
             [D, R] -> Rest#{mttd_ms => D, mttr_ms => R}
         end).

strategies() ->
    ?LET(L, non_empty(list(oneof(?V:strategies()))), lists:usort(L)).

mode() ->
    ?LET({Times, Rest}, {oneof([none, sorted_ms(2, 900000)]),
                         optional([{recovery_strategies, strategies()},
                                   {severity, oneof(?V:severities())}])},
         case Times of
             none -> Rest;
             [D, R] -> Rest#{detection_ms => D, recovery_ms => R}
         end).

failure_modes() ->
    ?LET(Types, sublist(?V:failure_types()), ?LET(Modes, vector(length(Types), mode()),
                                                  maps:from_list(lists:zip(Types, Modes)))).

planner() ->
    optional([{slo_budget_ms, oneof([integer(1, 1000000), float(1.0, 1.0e9)])},
              {blast_radius_limit, integer(0, 1000)},
              {quorum_size, oneof([majority, integer(1, 50)])},
              {default_recovery_ms, ?LET(L, sublist([{S, 1000} || S <- ?V:strategies()]),
                                         maps:from_list(L))},
              {step_ms, oneof([integer(0, 1000), float(0.0, 1000.0)])},
              {shed_percent, integer(1, 100)},
              {throttle_percent, integer(1, 100)},
              {degrade_impact, fraction(0.0, 1.0)}]).

gates() ->
    optional([{error_budget, fraction(0.01, 1.0)},
              {blast_radius, fraction(0.01, 1.0)},
              {cooldown_ms, integer(0, 600000)},
              {capacity_headroom, fraction(0.0, 0.99)},
              {max_incident_rate, oneof([integer(1, 1000), float(0.1, 1000.0)])},
              {max_consecutive_failures, integer(1, 1000)}]).

loop() ->
    ?LET({Times, Rest}, {oneof([none, sorted_ms(3, 600000)]),
                         optional([{min_confidence, fraction(0.0, 1.0)}])},
         case Times of
             none -> Rest;
             [I, C, L] -> Rest#{interval_ms => I, max_cycle_ms => C, lock_ttl_ms => L}
         end).

chaos() ->
    ?LET({Times, Rest}, {oneof([none, sorted_ms(2, 600000), ?LET(I, integer(1, 600000), [I, infinity])]),
                         optional([{enabled, boolean()},
                                   {max_concurrent, integer(1, 1000)},
                                   {pause_on_alert, boolean()},
                                   {safe_mode, boolean()},
                                   {require_approval, boolean()},
                                   {seed, oneof([random, integer(0, 1 bsl 62)])},
                                   {weights, weights()}])},
         case Times of
             none -> Rest;
             [I, D] -> Rest#{interval_ms => I, duration_ms => D}
         end).

weights() ->
    ?LET({First, Rest}, {oneof(?V:scenarios()), sublist([{S, 0} || S <- ?V:scenarios()])},
         maps:merge(maps:from_list(Rest), #{First => 1})).

%%% Corruptions: a path and a value its field refuses

corruption() ->
    oneof([{[name], oneof([42, <<>>, an_atom])},
           {[slo, availability], oneof([1.0, 0.2, {percent, 100}, high])},
           {[slo, mttr_ms], oneof([0, -1, 1.5, 4294967296])},
           {[slo, window_ms], 0},
           {[failure_modes, node_down, recovery_strategies], oneof([[], reboot, [escalate | pause]])},
           {[failure_modes, process_crash, severity], severe},
           {[failure_modes, memory_leak, detection_ms], 0},
           {[planner, shed_percent], oneof([0, 101, 1.5])},
           {[planner, quorum_size], 0},
           {[planner, degrade_impact], 2},
           {[gates, max_consecutive_failures], 0},
           {[gates, capacity_headroom], 1.0},
           {[loop, interval_ms], 0},
           {[loop, max_cycle_ms], 0},
           {[loop, min_confidence], 1.5},
           {[chaos, interval_ms], 0},
           {[chaos, seed], -1},
           {[chaos, safe_mode], sometimes},
           {[chaos, weights], #{}},
           {[gates, unknown_gate], 1}]).

put_in(Map, [K], V) -> Map#{K => V};
put_in(Map, [K | Rest], V) -> Map#{K => put_in(maps:get(K, Map, #{}), Rest, V)}.
