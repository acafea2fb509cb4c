%%% @doc The operation state machine, lock ordering and dependency conflicts
%%% ({@link autonomic_loop_op}), with PropEr properties over random walks and lock sets.
-module(autonomic_loop_op_tests).

-include_lib("proper/include/proper.hrl").
-include_lib("eunit/include/eunit.hrl").

nine_states_test() ->
    ?assertEqual(9, length(autonomic_loop_op:states())),
    ?assertEqual([completed, failed, rolled_back],
                 lists:sort([S || S <- autonomic_loop_op:states(), autonomic_loop_op:final(S)])).

happy_path_test() ->
    Path = [init, locked, safety_check, in_progress, verifying, completed],
    walk(Path).

ladder_and_review_test() ->
    walk([init, locked, safety_check, in_progress, verifying, in_progress, verifying, rolled_back]),
    walk([init, paused_for_human_review, locked, safety_check, in_progress, verifying, completed]),
    walk([init, locked, safety_check, paused_for_human_review, failed]).

walk([_]) -> ok;
walk([A, B | Rest]) ->
    ?assertEqual({ok, B}, autonomic_loop_op:transition(A, B)),
    walk([B | Rest]).

invalid_transitions_test() ->
    ?assertEqual({error, {invalid_transition, init, completed}}, autonomic_loop_op:transition(init, completed)),
    ?assertEqual({error, {invalid_transition, completed, init}}, autonomic_loop_op:transition(completed, init)),
    %% Acting needs the gates first: no jump from locked to in_progress.
    ?assertMatch({error, _}, autonomic_loop_op:transition(locked, in_progress)),
    %% Once executing, a human pause only takes effect through a rollback or a final state.
    ?assertMatch({error, _}, autonomic_loop_op:transition(in_progress, paused_for_human_review)),
    ?assertMatch({error, _}, autonomic_loop_op:transition(bogus, init)).

%% No state leaves a final state; every non-final state can reach a final one.
prop_finals_absorb() ->
    ?FORALL({From, To}, {state(), state()},
            case autonomic_loop_op:final(From) of
                true -> autonomic_loop_op:transition(From, To) =/= {ok, To};
                false -> true
            end).

prop_every_state_can_end() ->
    ?FORALL(S, state(), reaches_final(S, [])).

reaches_final(S, Seen) ->
    autonomic_loop_op:final(S) orelse
        lists:any(fun(T) -> not lists:member(T, Seen) andalso autonomic_loop_op:transition(S, T) =:= {ok, T}
                                andalso reaches_final(T, [S | Seen])
                  end, autonomic_loop_op:states()).

state() -> oneof(autonomic_loop_op:states()).

lock_order_test() ->
    Keys = autonomic_loop_op:lock_keys(#{target => {backend, 'a@h', db}, strategy => load_shedding, service => api}),
    ?assertEqual([{system, {shedding, 'a@h'}}, {service, {'a@h', api}}, {incident, {backend, 'a@h', db}},
                  {deployment, {'a@h', db}}], Keys).

%% Whatever the operation, its locks come in the fixed order: system, service, incident,
%% deployment (so two operations never wait for each other in a cycle), without duplicates.
prop_locks_in_fixed_order() ->
    ?FORALL(Op, op(),
            begin
                Keys = autonomic_loop_op:lock_keys(Op),
                Ranks = [autonomic_loop_op:lock_rank(K) || {K, _} <- Keys],
                Ranks =:= lists:sort(Ranks) andalso length(Keys) =:= length(lists:usort(Keys))
                    andalso lists:member({incident, maps:get(target, Op)}, Keys)
            end).

op() ->
    ?LET({T, S, Svc}, {target(), oneof([supervisor_restart, quorum_reconfiguration, load_shedding, throttle, backend_failover]),
                       oneof([undefined, wl, api])},
         case Svc of
             undefined -> #{target => T, strategy => S};
             _ -> #{target => T, strategy => S, service => Svc}
         end).

target() ->
    oneof([{service, oneof(['a@h', 'b@h']), oneof([wl, api])}, {node, oneof(['a@h', 'b@h'])},
           {backend, 'a@h', oneof([db, cache])}, {tenant, 'a@h', <<"t">>}]).

conflicts_test() ->
    Wl = #{id => 1, service => wl, node => 'a@h', depends_on => []},
    Api = #{id => 2, service => api, node => 'a@h', depends_on => [wl]},
    Other = #{id => 3, service => web, node => 'a@h', depends_on => []},
    ApiB = #{id => 4, service => api, node => 'b@h', depends_on => [wl]},
    %% api depends on wl: each conflicts with the other.
    ?assertEqual([1], autonomic_loop_op:conflicts(Api, [Wl, Other, ApiB])),
    ?assertEqual([2], autonomic_loop_op:conflicts(Wl, [Api, Other, ApiB])),
    ?assertEqual([], autonomic_loop_op:conflicts(Other, [Wl, Api])),
    ?assertEqual([], autonomic_loop_op:conflicts(#{id => 5}, [Wl, Api])).

proper_test_() ->
    {timeout, 60, [?_assert(proper:quickcheck(P, [{numtests, 300}, {to_file, user}]))
                   || P <- [prop_finals_absorb(), prop_every_state_can_end(), prop_locks_in_fixed_order()]]}.
