%%% @doc EUnit tests of the node-wide fence (`autonomic:set_fence/1'): while it is up every
%%% `transition/2' answers refuse with `{shed, 100}' and no governor changes; lowered, the
%%% governors carry on from where they were.
-module(autonomic_fence_tests).

-include_lib("eunit/include/eunit.hrl").

fence_test_() ->
    {setup, fun() -> ok end, fun(_) -> autonomic:set_fence(false) end, [
        fun refuses_without_touching_the_governor/0,
        fun new_tenant_is_not_created_while_fenced/0,
        fun bad_input_gets_its_error_while_fenced/0,
        fun idempotent/0
    ]}.

refuses_without_touching_the_governor() ->
    T = tenant(),
    ?assertEqual({ok, warn, none}, autonomic:transition(T, {signal, cpu, 80})),
    {ok, Before} = autonomic:governor_info(T),
    ok = autonomic:set_fence(true),
    ?assert(autonomic:fenced()),
    %% Every kind of event is refused, and the governor does not see it.
    [?assertEqual({ok, refuse, {shed, 100}}, autonomic:transition(T, E))
     || E <- [{signal, cpu, 99}, {signal, cpu, 10}, action_failed, action_succeeded, reset]],
    {ok, During} = autonomic:governor_info(T),
    ?assertEqual(maps:without([time_in_state_ms], Before), maps:without([time_in_state_ms], During)),
    ok = autonomic:set_fence(false),
    ?assertNot(autonomic:fenced()),
    %% The governor resumes from warn: a second high reading counts as the second.
    ?assertEqual({ok, warn, none}, autonomic:transition(T, {signal, cpu, 80})),
    {ok, #{consecutive_high := 2, transitions := 2}} = autonomic:governor_info(T),
    ok = autonomic:forget_tenant(T).

new_tenant_is_not_created_while_fenced() ->
    T = tenant(),
    ok = autonomic:set_fence(true),
    ?assertEqual({ok, refuse, {shed, 100}}, autonomic:transition(T, {signal, cpu, 50})),
    ?assertEqual({error, not_found}, autonomic:governor_info(T)),
    ok = autonomic:set_fence(false),
    ?assertEqual({ok, stable, none}, autonomic:transition(T, {signal, cpu, 50})),
    ok = autonomic:forget_tenant(T).

bad_input_gets_its_error_while_fenced() ->
    ok = autonomic:set_fence(true),
    ?assertEqual({error, invalid_tenant}, autonomic:transition(acme, {signal, cpu, 50})),
    ?assertEqual({error, {invalid_signal, 150}}, autonomic:transition(tenant(), {signal, cpu, 150})),
    ?assertEqual({error, {unknown_event, bogus}}, autonomic:transition(tenant(), bogus)),
    ok = autonomic:set_fence(false).

idempotent() ->
    ok = autonomic:set_fence(true),
    ok = autonomic:set_fence(true),
    ?assert(autonomic:fenced()),
    ok = autonomic:set_fence(false),
    ok = autonomic:set_fence(false),
    ?assertNot(autonomic:fenced()),
    ?assertError(function_clause, autonomic:set_fence(yes)).

tenant() ->
    <<"fence-", (integer_to_binary(erlang:unique_integer([positive])))/binary>>.
