%%% @doc EUnit tests of tenant entitlements: the lifecycle table (every pair of states, valid and
%%% invalid), the SKU figures and their configuration, quotas and how the governor's throttle and
%%% pause apply within them, admission (lifecycle, bucket, shedding at the SKU's priority),
%%% expiry, and bad input.
-module(autonomic_entitlements_tests).

-include_lib("eunit/include/eunit.hrl").

-define(GiB, 1073741824).
-define(STATES, [pending, active, paused, expired, terminated]).
%% The lifecycle, written out pair by pair: {From, To, Allowed}.
-define(TABLE, [
    {pending, pending, false}, {pending, active, true}, {pending, paused, false}, {pending, expired, false},
    {pending, terminated, true},
    {active, pending, false}, {active, active, false}, {active, paused, true}, {active, expired, true},
    {active, terminated, true},
    {paused, pending, false}, {paused, active, true}, {paused, paused, false}, {paused, expired, true},
    {paused, terminated, true},
    {expired, pending, false}, {expired, active, true}, {expired, paused, false}, {expired, expired, false},
    {expired, terminated, true},
    {terminated, pending, false}, {terminated, active, false}, {terminated, paused, false},
    {terminated, expired, false}, {terminated, terminated, false}
]).

entitlements_test_() ->
    {setup,
        fun() -> execute_test_env:start([{skus, #{pro => #{concurrent => 1200}, trial => #{cpu => 1, memory => ?GiB,
                                                  concurrent => 5, storage => ?GiB, priority => 0}}},
                                         {entitlement_check_ms, 50}]) end,
        fun execute_test_env:stop/1,
        [
            fun lifecycle_table/0,
            fun lifecycle_table_on_tenants/0,
            fun skus/0,
            fun quotas_and_the_governor/0,
            fun admission/0,
            fun expiry/0,
            fun bad_input_is_an_error/0
        ]}.

tenant() ->
    <<"e", (integer_to_binary(erlang:unique_integer([positive])))/binary>>.

lifecycle_table() ->
    ?assertEqual(length(?STATES) * length(?STATES), length(?TABLE)),
    [case Allowed of
         true -> ?assertEqual(ok, autonomic_entitlements:lifecycle_transition(From, To));
         false -> ?assertEqual({error, {invalid_transition, From, To}},
                               autonomic_entitlements:lifecycle_transition(From, To))
     end || {From, To, Allowed} <- ?TABLE].

%% The same table through the server, on real tenants brought to each state.
lifecycle_table_on_tenants() ->
    [begin
         T = in_state(From),
         {ok, From} = autonomic_entitlements:state(T),
         case Allowed of
             true ->
                 ?assertEqual(ok, autonomic_entitlements:transition(T, To)),
                 ?assertEqual({ok, To}, autonomic_entitlements:state(T));
             false ->
                 ?assertEqual({error, {invalid_transition, From, To}}, autonomic_entitlements:transition(T, To)),
                 ?assertEqual({ok, From}, autonomic_entitlements:state(T))
         end
     end || {From, To, Allowed} <- ?TABLE],
    %% The named helpers are the same transitions.
    T = tenant(),
    ok = autonomic_entitlements:provision(T, starter),
    ?assertEqual({error, {invalid_transition, pending, active}}, autonomic_entitlements:resume(T)),
    ok = autonomic_entitlements:activate(T),
    ok = autonomic_entitlements:pause(T),
    ok = autonomic_entitlements:resume(T),
    ok = autonomic_entitlements:expire(T),
    ok = autonomic_entitlements:renew(T),
    ok = autonomic_entitlements:terminate(T),
    ?assertEqual({error, {invalid_transition, terminated, active}}, autonomic_entitlements:renew(T)),
    ?assertEqual({error, {already_provisioned, terminated}}, autonomic_entitlements:provision(T, pro)).

in_state(State) ->
    T = tenant(),
    ok = autonomic_entitlements:provision(T, starter),
    Path = #{pending => [], active => [active], paused => [active, paused], expired => [active, expired],
             terminated => [terminated]},
    [ok = autonomic_entitlements:transition(T, S) || S <- maps:get(State, Path)],
    T.

skus() ->
    Skus = autonomic_entitlements:skus(),
    ?assertEqual(#{cpu => 2, memory => 4 * ?GiB, concurrent => 100, storage => 10 * ?GiB, priority => 1},
                 maps:get(starter, Skus)),
    %% Configured: pro's concurrency raised, the rest of pro as built in; a new SKU.
    ?assertEqual(#{cpu => 8, memory => 32 * ?GiB, concurrent => 1200, storage => 100 * ?GiB, priority => 2},
                 maps:get(pro, Skus)),
    ?assertEqual(#{cpu => 64, memory => 256 * ?GiB, concurrent => 10000, storage => 1024 * ?GiB, priority => 3},
                 maps:get(enterprise, Skus)),
    ?assertMatch({ok, #{concurrent := 5}}, autonomic_entitlements:sku(trial)),
    ?assertEqual({error, {unknown_sku, gold}}, autonomic_entitlements:sku(gold)),
    ?assertMatch({error, {invalid_sku, gold, _}}, autonomic_entitlements:merge_skus(#{gold => #{cpu => 1}})),
    ?assertMatch({error, {invalid_sku, pro, _}}, autonomic_entitlements:merge_skus(#{pro => #{cpu => -1}})),
    ?assertMatch({error, {invalid_sku, <<"x">>, _}}, autonomic_entitlements:merge_skus(#{<<"x">> => #{}})),
    ?assertMatch({error, {invalid_skus, _}}, autonomic_entitlements:merge_skus([])).

quotas_and_the_governor() ->
    T = in_state(active),
    {ok, starter} = autonomic_entitlements:change_sku(T, enterprise),
    ?assertEqual(ok, autonomic_entitlements:check_quota(T, concurrent, 10000)),
    ?assertEqual({error, {quota_exceeded, concurrent, 10001, 10000}},
                 autonomic_entitlements:check_quota(T, concurrent, 10001)),
    ?assertEqual(ok, autonomic_entitlements:check_quota(T, storage, 1024 * ?GiB)),
    ?assertEqual(ok, autonomic_entitlements:check_quota(T, cpu, 64)),
    ?assertEqual({error, {quota_exceeded, memory, 257 * ?GiB, 256 * ?GiB}},
                 autonomic_entitlements:check_quota(T, memory, 257 * ?GiB)),
    %% {throttle, 50}: cpu and concurrency halve, memory and storage stay.
    {ok, 0} = autonomic_bucket:throttle(T, 50),
    ?assertEqual({ok, 5000}, autonomic_entitlements:quota(T, concurrent)),
    ?assertEqual({ok, 32}, autonomic_entitlements:quota(T, cpu)),
    ?assertEqual({error, {quota_exceeded, concurrent, 5001, 5000}},
                 autonomic_entitlements:check_quota(T, concurrent, 5001)),
    ?assertEqual(ok, autonomic_entitlements:check_quota(T, memory, 256 * ?GiB)),
    %% pause: nothing.
    {ok, false} = autonomic_bucket:pause(T),
    ?assertEqual({error, paused}, autonomic_entitlements:check_quota(T, storage, 1)),
    {ok, true} = autonomic_bucket:resume(T),
    {ok, 50} = autonomic_bucket:throttle(T, 0),
    ?assertEqual(ok, autonomic_entitlements:check_quota(T, concurrent, 10000)),
    %% Only an active tenant has quotas.
    ok = autonomic_entitlements:pause(T),
    ?assertEqual({error, {not_active, paused}}, autonomic_entitlements:check_quota(T, cpu, 1)).

admission() ->
    T = in_state(active),
    ?assertEqual(ok, autonomic_entitlements:admit(T)),
    %% The tenant's token bucket.
    ok = autonomic_bucket:set_rate(T, 1, 2),
    ?assertEqual([ok, ok, {rejected, rate_limited}], [autonomic_entitlements:admit(T) || _ <- [1, 2, 3]]),
    ok = autonomic_bucket:clear_rate(T),
    %% Shedding everything below priority 2 reaches a starter tenant (priority 1), not a pro one.
    Pro = in_state(active),
    {ok, starter} = autonomic_entitlements:change_sku(Pro, pro),
    {ok, _} = autonomic_shed:set(100, 2),
    try
        ?assertEqual({rejected, shed}, autonomic_entitlements:admit(T)),
        ?assertEqual(ok, autonomic_entitlements:admit(Pro)),
        ?assertEqual({rejected, shed}, autonomic_entitlements:admit(Pro, 1))
    after
        {ok, _} = autonomic_shed:clear()
    end,
    ok = autonomic_entitlements:pause(T),
    ?assertEqual({rejected, {not_active, paused}}, autonomic_entitlements:admit(T)),
    ?assertEqual({error, not_found}, autonomic_entitlements:admit(tenant())).

expiry() ->
    T = tenant(),
    ok = autonomic_entitlements:provision(T, trial, #{expires_at => erlang:system_time(millisecond) + 200}),
    ok = autonomic_entitlements:activate(T),
    ?assertEqual(ok, autonomic_entitlements:check_quota(T, concurrent, 5)),
    ok = autonomic_events:subscribe(local),
    try
        receive
            {autonomic_event, #{type := entitlement_changed, detail := #{tenant := T, to := expired} = D}} ->
                ?assertEqual(active, maps:get(from, D))
        after 5000 ->
            error(no_expiry)
        end
    after
        autonomic_events:unsubscribe()
    end,
    ?assertEqual({ok, expired}, autonomic_entitlements:state(T)),
    ?assertEqual({error, {not_active, expired}}, autonomic_entitlements:check_quota(T, concurrent, 1)),
    ok = autonomic_entitlements:renew(T, erlang:system_time(millisecond) + 60000),
    ?assertEqual(ok, autonomic_entitlements:check_quota(T, concurrent, 1)).

bad_input_is_an_error() ->
    T = in_state(active),
    ?assertEqual({error, invalid_tenant}, autonomic_entitlements:provision(acme, pro)),
    ?assertEqual({error, invalid_tenant}, autonomic_entitlements:provision(<<>>, pro)),
    ?assertEqual({error, {unknown_sku, gold}}, autonomic_entitlements:provision(tenant(), gold)),
    ?assertEqual({error, {invalid_options, #{expires_at => soon}}},
                 autonomic_entitlements:provision(tenant(), pro, #{expires_at => soon})),
    ?assertEqual({error, {invalid_state, gone}}, autonomic_entitlements:transition(T, gone)),
    ?assertEqual({error, not_found}, autonomic_entitlements:transition(tenant(), active)),
    ?assertEqual({error, {unknown_sku, gold}}, autonomic_entitlements:change_sku(T, gold)),
    ?assertEqual({error, {unknown_resource, gpu}}, autonomic_entitlements:check_quota(T, gpu, 1)),
    ?assertEqual({error, {invalid_amount, -1}}, autonomic_entitlements:check_quota(T, cpu, -1)),
    ?assertEqual({error, {invalid_amount, lots}}, autonomic_entitlements:check_quota(T, cpu, lots)),
    ?assertEqual({error, invalid_tenant}, autonomic_entitlements:check_quota(42, cpu, 1)),
    ?assertEqual({error, not_found}, autonomic_entitlements:check_quota(tenant(), cpu, 1)),
    ?assertEqual({error, {invalid_priority, high}}, autonomic_entitlements:admit(T, high)),
    ?assertEqual({error, {invalid_expiry, soon}}, autonomic_entitlements:renew(T, soon)),
    ?assertEqual({ok, active}, autonomic_entitlements:state(T)).
