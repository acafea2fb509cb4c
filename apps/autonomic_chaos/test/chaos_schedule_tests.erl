%%% @doc The schedule's decisions: gating, weighted choice, safe mode, seeds.
-module(chaos_schedule_tests).
-include_lib("eunit/include/eunit.hrl").

base() ->
    #{active => 0, max_concurrent => 1, pause_on_alert => true, alert => false, operations => 0, pending => 0}.

may_inject_test_() ->
    [?_assertEqual(ok, chaos_schedule:may_inject(base())),
     ?_assertEqual({wait, max_concurrent}, chaos_schedule:may_inject((base())#{active := 1})),
     ?_assertEqual(ok, chaos_schedule:may_inject((base())#{active := 1, max_concurrent := 2})),
     ?_assertEqual({wait, alert_firing}, chaos_schedule:may_inject((base())#{alert := true})),
     ?_assertEqual({wait, operation_in_progress}, chaos_schedule:may_inject((base())#{operations := 2})),
     ?_assertEqual(ok, chaos_schedule:may_inject((base())#{pause_on_alert := false, alert := true, operations := 1})),
     ?_assertEqual({wait, awaiting_approval}, chaos_schedule:may_inject((base())#{pending := 1}))].

same_seed_same_choices_test() ->
    Weights = #{a => 1, b => 2, c => 3},
    Draw = fun(Seed) ->
                   {_, R0} = chaos_schedule:new(Seed),
                   {L, _} = lists:mapfoldl(fun(_, R) -> chaos_schedule:pick(Weights, [a, b, c], R) end, R0, lists:seq(1, 50)),
                   L
           end,
    ?assertEqual(Draw(7), Draw(7)),
    ?assertNotEqual(Draw(7), Draw(8)).

weights_are_respected_test() ->
    {_, R0} = chaos_schedule:new(1),
    {L, _} = lists:mapfoldl(fun(_, R) -> chaos_schedule:pick(#{a => 1, b => 3, c => 0}, [a, b, c], R) end, R0, lists:seq(1, 4000)),
    A = length([x || a <- L]),
    B = length([x || b <- L]),
    ?assertEqual(0, length([x || c <- L])),
    ?assertEqual(4000, A + B),
    %% 1:3 within a few percent.
    ?assert(abs(B / A - 3) < 0.4).

nothing_eligible_test() ->
    {_, R} = chaos_schedule:new(1),
    ?assertMatch({none, _}, chaos_schedule:pick(#{a => 1}, [b], R)),
    ?assertMatch({none, _}, chaos_schedule:pick(#{a => 0}, [a], R)).

safe_mode_protects_the_coordinator_and_quorum_test() ->
    All = [n1, n2, n3, n4, n5],
    Ctx = #{all => All, live => All, safe_mode => true, protected => [n3]},
    ?assertEqual([n1, n2, n4, n5], chaos_schedule:victims(node_kill, Ctx)),
    ?assertEqual([n1, n2, n4, n5], chaos_schedule:victims(process_kill, Ctx)),
    %% Two nodes down of five: a third kill would leave 2 < 3.
    ?assertEqual([], chaos_schedule:victims(node_kill, Ctx#{live := [n1, n2, n3]})),
    ?assertEqual([], chaos_schedule:victims(network_partition, Ctx#{live := [n1, n2, n3]})),
    [?assertEqual(4, length(Maj)) || {[_], Maj} <- chaos_schedule:victims(network_partition, Ctx)],
    ?assertNot(lists:keymember([n3], 1, chaos_schedule:victims(network_partition, Ctx))),
    %% Without safe mode the coordinator is fair game.
    ?assertEqual(All, chaos_schedule:victims(node_kill, Ctx#{safe_mode := false})).

seed_random_draws_one_test() ->
    {S, _} = chaos_schedule:new(random),
    ?assert(is_integer(S) andalso S >= 0).
