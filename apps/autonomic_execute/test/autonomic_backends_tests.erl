%%% @doc EUnit tests of the backend registry: registration, the target read, failover and its
%%% checks, events and metrics, backends from the configuration, bad input.
-module(autonomic_backends_tests).

-include_lib("eunit/include/eunit.hrl").

backends_test_() ->
    {setup,
        fun() -> execute_test_env:start([{backends, #{cache => #{targets => [c1, c2], active => c2}}}]) end,
        fun execute_test_env:stop/1,
        [fun registry/0, fun failover/0, fun configured/0, fun bad_input_is_an_error/0]}.

registry() ->
    ok = autonomic_backends:register(db, [{"db1", 5432}, {"db2", 5432}], {"db1", 5432}),
    ?assertEqual({ok, {"db1", 5432}}, autonomic_backends:target(db)),
    ?assertEqual({ok, #{active => {"db1", 5432}, targets => [{"db1", 5432}, {"db2", 5432}], failovers => 0}},
                 autonomic_backends:info(db)),
    ?assert(lists:member({db, {"db1", 5432}}, autonomic_backends:list())),
    ok = autonomic_backends:unregister(db),
    ?assertEqual({error, not_found}, autonomic_backends:target(db)),
    ok = autonomic_backends:unregister(db).

failover() ->
    ok = autonomic_backends:register(<<"queue">>, [q1, q2, q3], q1),
    ok = autonomic_events:subscribe(local),
    try
        ?assertEqual({ok, q1}, autonomic_backends:failover(<<"queue">>, q1, q3)),
        ?assertEqual({ok, q3}, autonomic_backends:target(<<"queue">>)),
        receive
            {autonomic_event, #{type := backend_failover, detail := D}} ->
                ?assertEqual(#{backend => <<"queue">>, from => q1, to => q3}, D)
        after 5000 -> error(no_event)
        end,
        ?assertEqual(1, autonomic_metrics:value(autonomic_backend_failovers_total, #{backend => <<"queue">>})),
        %% A stale view (q1 is no longer active) is refused, and so are unknown and same targets.
        ?assertEqual({error, {not_active, q1, q3}}, autonomic_backends:failover(<<"queue">>, q1, q2)),
        ?assertEqual({error, {unknown_target, q9}}, autonomic_backends:failover(<<"queue">>, q3, q9)),
        ?assertEqual({error, {same_target, q3}}, autonomic_backends:failover(<<"queue">>, q3, q3)),
        ?assertEqual({error, {unknown_backend, nope}}, autonomic_backends:failover(nope, a, b)),
        ?assertEqual({ok, q3}, autonomic_backends:target(<<"queue">>))
    after
        autonomic_events:unsubscribe()
    end.

configured() ->
    ?assertEqual({ok, c2}, autonomic_backends:target(cache)).

bad_input_is_an_error() ->
    ?assertEqual({error, {invalid_backend, {db}}}, autonomic_backends:register({db}, [a], a)),
    ?assertEqual({error, {invalid_targets, []}}, autonomic_backends:register(db, [], a)),
    ?assertEqual({error, {invalid_targets, [a, a]}}, autonomic_backends:register(db, [a, a], a)),
    ?assertEqual({error, {invalid_targets, a}}, autonomic_backends:register(db, a, a)),
    ?assertEqual({error, {unknown_target, c}}, autonomic_backends:register(db, [a, b], c)),
    ?assertEqual({error, not_found}, autonomic_backends:target(db)).
