%%% @doc EUnit tests of the governor API (`autonomic:transition/2' and friends) through the real
%%% NIF: the README scenario, bad input of every kind (each must leave the state untouched),
%%% threshold configuration and its validation, forgetting tenants.
-module(autonomic_governor_tests).

-include_lib("eunit/include/eunit.hrl").

-define(DEFAULTS, #{warn => 75, intervene => 90, recover => 70, calm => 75, refuse => 95, sustain => 3}).

%% Every test gets a fresh tenant name and the default thresholds back afterwards: the governors
%% are node-wide state inside the NIF.
governor_test_() ->
    {foreach, fun setup/0, fun cleanup/1, [
        fun readme_scenario/1,
        fun every_state_reachable/1,
        fun invalid_tenants_rejected/1,
        fun invalid_signals_rejected/1,
        fun malformed_events_rejected/1,
        fun info_of_unknown_tenant/1,
        fun time_in_state_grows/1,
        fun forget_restarts_tenant/1,
        fun configure_merges_and_applies/1,
        fun configure_rejects_bad_thresholds/1,
        fun binary_and_atom_metrics_equivalent/1
    ]}.

setup() ->
    ok = autonomic:configure_governor(?DEFAULTS),
    <<"t-", (integer_to_binary(erlang:unique_integer([positive])))/binary>>.

cleanup(Tenant) ->
    ok = autonomic:forget_tenant(Tenant),
    ok = autonomic:configure_governor(?DEFAULTS).

sig(V) -> {signal, cpu, V}.

info(T) ->
    {ok, I} = autonomic:governor_info(T),
    I.

readme_scenario(T) ->
    Steps = [
        {sig(45), stable, none, 0},
        {sig(78), warn, none, 1},
        {sig(78), warn, none, 2},
        {sig(92), intervene, {throttle, 50}, 2},
        {action_succeeded, warn, none, 0},
        {sig(55), stable, none, 0}
    ],
    Got = [
        begin
            {ok, S, A} = autonomic:transition(T, E),
            {S, A, maps:get(consecutive_high, info(T))}
        end
     || {E, _, _, _} <- Steps
    ],
    Want = [{S, A, N} || {_, S, A, N} <- Steps],
    [?_assertEqual(Want, Got), ?_assertEqual(6, maps:get(transitions, info(T)))].

every_state_reachable(T) ->
    Seq = [
        {sig(80), warn, none},
        {sig(80), warn, none},
        {sig(80), degrade, {throttle, 25}},
        {sig(96), refuse, {shed, 50}},
        {sig(10), refuse, none},
        {reset, stable, none},
        {sig(95), intervene, {throttle, 50}},
        {action_failed, degrade, pause},
        {sig(50), intervene, none}
    ],
    Got = [
        begin
            {ok, S, A} = autonomic:transition(T, E),
            {S, A}
        end
     || {E, _, _} <- Seq
    ],
    ?_assertEqual([{S, A} || {_, S, A} <- Seq], Got).

%% Each bad call must return its error and leave the tenant exactly as it was.
assert_unchanged(T, Calls) ->
    {ok, warn, none} = autonomic:transition(T, sig(80)),
    Before = maps:remove(time_in_state_ms, info(T)),
    Results = [{Call, apply(autonomic, transition, Call)} || Call <- Calls],
    After = maps:remove(time_in_state_ms, info(T)),
    {Results, Before, After}.

invalid_tenants_rejected(T) ->
    Bad = [
        acme,
        "acme",
        42,
        <<>>,
        binary:copy(<<"x">>, 257),
        <<1:3>>,
        {<<"acme">>},
        [<<"acme">>],
        #{},
        self(),
        make_ref()
    ],
    {Results, Before, After} = assert_unchanged(T, [[B, sig(99)] || B <- Bad]),
    [
        ?_assertEqual([{error, invalid_tenant} || _ <- Bad], [R || {_, R} <- Results]),
        ?_assertEqual(Before, After),
        %% The longest valid name is accepted.
        ?_assertMatch({ok, stable, none}, autonomic:transition(binary:copy(<<"y">>, 256), reset)),
        ?_assertEqual(ok, autonomic:forget_tenant(binary:copy(<<"y">>, 256)))
    ].

invalid_signals_rejected(T) ->
    Bad = [1.0e308, -1.0e308, -1, -0.5, 100.5, 101, 1 bsl 80, -(1 bsl 80), foo, "50", <<"50">>, {50}, [], self()],
    {Results, Before, After} = assert_unchanged(T, [[T, sig(V)] || V <- Bad]),
    [
        ?_assertEqual([{error, {invalid_signal, V}} || V <- Bad], [R || {_, R} <- Results]),
        ?_assertEqual(Before, After),
        %% 0 and 100, as integers and floats, are valid.
        ?_assertMatch({ok, _, _}, autonomic:transition(T, sig(0))),
        ?_assertMatch({ok, _, _}, autonomic:transition(T, sig(100.0)))
    ].

malformed_events_rejected(T) ->
    Bad = [
        boom,
        {signal, cpu},
        {signal, cpu, 50, extra},
        {sig, cpu, 50},
        {signal, 123, 50},
        {signal, "cpu", 50},
        {signal, {cpu}, 50},
        {reset},
        [reset],
        "reset",
        <<"reset">>,
        #{signal => 50},
        42,
        {}
    ],
    {Results, Before, After} = assert_unchanged(T, [[T, E] || E <- Bad]),
    [
        ?_assertEqual([{error, {unknown_event, E}} || E <- Bad], [R || {_, R} <- Results]),
        ?_assertEqual(Before, After)
    ].

info_of_unknown_tenant(T) ->
    [
        ?_assertEqual({error, not_found}, autonomic:governor_info(T)),
        ?_assertEqual({error, invalid_tenant}, autonomic:governor_info(<<>>)),
        ?_assertEqual({error, invalid_tenant}, autonomic:forget_tenant(acme)),
        %% A rejected first event does not create the tenant.
        ?_assertEqual({error, {invalid_signal, 200}}, autonomic:transition(T, sig(200))),
        ?_assertEqual({error, not_found}, autonomic:governor_info(T))
    ].

time_in_state_grows(T) ->
    {ok, warn, none} = autonomic:transition(T, sig(80)),
    timer:sleep(30),
    %% A self-loop keeps the clock running; a state change restarts it.
    {ok, warn, none} = autonomic:transition(T, sig(72)),
    Kept = maps:get(time_in_state_ms, info(T)),
    {ok, stable, none} = autonomic:transition(T, sig(10)),
    Restarted = maps:get(time_in_state_ms, info(T)),
    [?_assert(Kept >= 30), ?_assert(Restarted < 30)].

forget_restarts_tenant(T) ->
    {ok, intervene, _} = autonomic:transition(T, sig(95)),
    Count = autonomic:tenant_count(),
    ok = autonomic:forget_tenant(T),
    ok = autonomic:forget_tenant(T),
    [
        ?_assertEqual({error, not_found}, autonomic:governor_info(T)),
        ?_assertEqual(Count - 1, autonomic:tenant_count()),
        ?_assertEqual({ok, stable, none}, autonomic:transition(T, sig(10)))
    ].

configure_merges_and_applies(T) ->
    ok = autonomic:configure_governor(#{warn => 50, calm => 50, recover => 40, sustain => 1}),
    Th = autonomic:governor_thresholds(),
    {ok, S1, _} = autonomic:transition(T, sig(55)),
    {ok, S2, A2} = autonomic:transition(T, sig(55)),
    [
        ?_assertEqual(50.0, maps:get(warn, Th)),
        %% Keys not given keep their values.
        ?_assertEqual(90.0, maps:get(intervene, Th)),
        ?_assertEqual(1, maps:get(sustain, Th)),
        ?_assertEqual(warn, S1),
        ?_assertEqual({degrade, {throttle, 25}}, {S2, A2})
    ].

configure_rejects_bad_thresholds(_T) ->
    Cases = [
        {not_a_map, [warn]},
        {not_a_map, 75},
        {{unknown_key, foo}, #{foo => 1}},
        {{unknown_key, <<"warn">>}, #{<<"warn">> => 80}},
        {{not_a_number, warn, high}, #{warn => high}},
        {{invalid_sustain, 0}, #{sustain => 0}},
        {{invalid_sustain, -1}, #{sustain => -1}},
        {{invalid_sustain, 2.0}, #{sustain => 2.0}},
        {{out_of_range, refuse, 101}, #{refuse => 101}},
        {{out_of_range, recover, -5}, #{recover => -5}},
        {{out_of_range, warn, 1.0e308}, #{warn => 1.0e308}},
        {{order, recover, calm}, #{recover => 76}},
        {{order, calm, warn}, #{calm => 80}},
        {{order, warn, intervene}, #{warn => 90}},
        {{order, intervene, refuse}, #{intervene => 96}}
    ],
    Before = autonomic:governor_thresholds(),
    Got = [{Why, autonomic:configure_governor(Arg)} || {Why, Arg} <- Cases],
    [
        ?_assertEqual([{Why, {error, {invalid_thresholds, Why}}} || {Why, _} <- Cases], Got),
        ?_assertEqual(Before, autonomic:governor_thresholds())
    ].

binary_and_atom_metrics_equivalent(T) ->
    [
        ?_assertEqual({ok, warn, none}, autonomic:transition(T, {signal, <<"queue_depth">>, 80})),
        ?_assertEqual({ok, warn, none}, autonomic:transition(T, {signal, queue_depth, 80.5}))
    ].
