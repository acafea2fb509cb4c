%%% @doc PropEr: the governor NIF and the pure Erlang model of the DESIGN.md table
%%% (`governor_model') agree on state, action, consecutive_high and transitions after every step
%%% of random event sequences, with the default thresholds and with random valid ones.
-module(autonomic_governor_prop_tests).

-include_lib("proper/include/proper.hrl").
-include_lib("eunit/include/eunit.hrl").

-define(DEFAULTS, #{warn => 75, intervene => 90, recover => 70, calm => 75, refuse => 95, sustain => 3}).

default_thresholds_test_() ->
    {timeout, 300,
        ?_assert(proper:quickcheck(prop_nif_matches_model(), [{numtests, 1000}, {to_file, user}]))}.

random_thresholds_test_() ->
    {timeout, 300,
        ?_assert(proper:quickcheck(prop_nif_matches_model_any_thresholds(), [{numtests, 500}, {to_file, user}]))}.

%%% Properties

prop_nif_matches_model() ->
    ?FORALL(Events, list(event()), agree(?DEFAULTS, Events)).

prop_nif_matches_model_any_thresholds() ->
    ?FORALL({Th, Events}, {thresholds(), list(event())}, agree(Th, Events)).

agree(Th, Events) ->
    ok = autonomic:configure_governor(Th),
    Tenant = <<"prop-", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
    try
        walk(Tenant, Th, governor_model:new(), Events)
    after
        ok = autonomic:forget_tenant(Tenant),
        ok = autonomic:configure_governor(?DEFAULTS)
    end.

walk(_Tenant, _Th, _Model, []) ->
    true;
walk(Tenant, Th, Model, [Event | Rest]) ->
    {Model1, ModelAction} = governor_model:step(Model, Event, Th),
    {ok, State, Action} = autonomic:transition(Tenant, Event),
    {ok, Info} = autonomic:governor_info(Tenant),
    Nif = {State, Action, maps:with([state, consecutive_high, transitions], Info)},
    Want = {maps:get(state, Model1), ModelAction, Model1},
    case Nif =:= Want of
        true ->
            walk(Tenant, Th, Model1, Rest);
        false ->
            io:format(user, "~nafter ~p: nif ~p, model ~p~n", [Event, Nif, Want]),
            false
    end.

%%% Generators

event() ->
    frequency([
        {12, {signal, elements([cpu, memory, <<"queue">>]), value()}},
        {2, action_succeeded},
        {2, action_failed},
        {1, reset}
    ]).

%% Values cluster around the thresholds, where mistakes hide.
value() ->
    frequency([
        {3, integer(0, 100)},
        {2, float(0.0, 100.0)},
        {4, elements([0, 69, 69.999, 70, 70.0, 74, 74.999, 75, 89, 89.999, 90, 95, 95.0, 95.001, 96, 100, 100.0])}
    ]).

%% Valid thresholds: recover =< calm =< warn < intervene =< refuse, sustain >= 1.
thresholds() ->
    ?LET(
        {[R, C, W0], I0, F0, S},
        {vector(3, integer(0, 99)), integer(1, 100), integer(1, 100), integer(1, 5)},
        begin
            [R1, C1, W1] = lists:sort([R, C, W0]),
            I1 = max(I0, W1 + 1),
            F1 = max(F0, I1),
            #{recover => R1, calm => C1, warn => W1, intervene => I1, refuse => F1, sustain => S}
        end
    ).
