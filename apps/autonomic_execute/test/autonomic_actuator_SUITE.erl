%%% @doc The actuator on a running node with the real `audit' ledger: every action does what it
%%% says and leaves a receipt that the ledger returns (`get', `by_action') and decodes to what
%%% was done and what it replaced; rollback restores exactly the previous setting of every
%%% reversible action, in any depth of stacked actions, and writes its own receipt; rollbacks
%%% that would be wrong are refused; restarts are receipted and irreversible; failed actions are
%%% receipted and escalated; an action whose receipt cannot be written is undone; bad input is
%%% `{error, Reason}' and writes nothing; and the chain verifies at the end.
-module(autonomic_actuator_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([every_action_has_a_receipt/1, rollback_restores_exact_previous_settings/1,
         stacked_actions_roll_back_in_reverse_order/1, refused_rollbacks/1, restarts/1,
         failed_actions_are_receipted_and_escalated/1, no_action_without_its_receipt/1,
         governor_actions/1, bad_input_writes_nothing/1, the_chain_verifies/1]).

suite() -> [{timetrap, {minutes, 3}}].

all() ->
    [every_action_has_a_receipt, rollback_restores_exact_previous_settings, stacked_actions_roll_back_in_reverse_order,
     refused_rollbacks, restarts, failed_actions_are_receipted_and_escalated, no_action_without_its_receipt,
     governor_actions, bad_input_writes_nothing, the_chain_verifies].

init_per_suite(Config) ->
    Env = execute_test_env:start([{restart_cooldown_ms, 0}]),
    ok = autonomic_backends:register(db, [db1, db2, {replica, 3}], db1),
    [{env, Env} | Config].

end_per_suite(Config) ->
    execute_test_env:stop(?config(env, Config)).

init_per_testcase(_TC, Config) ->
    Config.

end_per_testcase(_TC, _Config) ->
    _ = autonomic_shed:clear(),
    _ = autonomic_degrade:set_level(normal),
    ok.

tenant() ->
    <<"a", (integer_to_binary(erlang:unique_integer([positive])))/binary>>.

exec(Action) ->
    {ok, #{receipt := Id} = S} = autonomic_actuator:execute(Action),
    {Id, S}.

%% The receipt as stored, decoded.
stored(Id) ->
    {ok, #{action := A, result := R} = Receipt} = autonomic_ledger:get(Id),
    {ok, Detail} = autonomic_receipt:decode(R),
    {A, Detail, Receipt}.

%%% Tests

every_action_has_a_receipt(_Config) ->
    T = tenant(),
    Cases = [
        {{throttle, T, 40}, <<"execute.throttle">>, 0, 40, fun() -> autonomic_bucket:controls(T) end, {40, false}},
        {{pause, T}, <<"execute.pause">>, false, true, fun() -> autonomic_bucket:controls(T) end, {40, true}},
        {{shed, 30, 4}, <<"execute.shed">>, off, {30, 4}, fun autonomic_shed:get/0, {30, 4}},
        {{degrade, minimal}, <<"execute.degrade">>, normal, minimal, fun autonomic_degrade:level/0, minimal},
        {{failover, db, db1, db2}, <<"execute.failover">>, db1, db2, fun() -> autonomic_backends:target(db) end, {ok, db2}}
    ],
    [begin
         {Id, Summary} = exec(Action),
         ?assertEqual(Effect, Check()),
         ?assertMatch(#{kind := _, action := Action, previous := Prev, new := New, outcome := ok,
                        reversible := true, replaced_receipt := none, seq := _}, Summary),
         {Name, Detail, #{seq := Seq}} = stored(Id),
         ?assertEqual(Name, autonomic_receipt:action(element(1, Action))),
         ?assertEqual(maps:get(seq, Summary), Seq),
         ?assertMatch(#{v := 1, action := Action, previous := Prev, new := New, outcome := ok, node := _, at := _,
                        elapsed_us := _}, Detail),
         {ok, ByAction} = autonomic_ledger:by_action(Name),
         ?assert(lists:member(Id, [I || #{id := I} <- ByAction])),
         ?assertMatch({ok, #{kind := _, detail := Detail}}, autonomic_actuator:receipt(Id)),
         ?assert(lists:member(Id, [R || #{receipt := R} <- autonomic_actuator:active()]))
     end || {Action, Name, Prev, New, Check, Effect} <- Cases],
    %% Put db back for the other tests.
    {ok, _} = autonomic_actuator:execute({failover, db, db2, db1}).

rollback_restores_exact_previous_settings(_Config) ->
    T = tenant(),
    %% Settings made outside the actuator first: the rollback must restore them, not defaults.
    {ok, 0} = autonomic_bucket:throttle(T, 30),
    {ok, false} = autonomic_bucket:pause(T),
    {ok, off} = autonomic_shed:set(10, 3),
    {ok, normal} = autonomic_degrade:set_level(degraded),
    Steps = [
        {{throttle, T, 70}, fun() -> element(1, autonomic_bucket:controls(T)) end, 30, 70},
        {{pause, T}, fun() -> element(2, autonomic_bucket:controls(T)) end, true, true},
        {{shed, 50, 5}, fun autonomic_shed:get/0, {10, 3}, {50, 5}},
        {{degrade, emergency}, fun autonomic_degrade:manual_level/0, degraded, emergency},
        {{failover, db, db1, {replica, 3}}, fun() -> {ok, A} = autonomic_backends:target(db), A end, db1, {replica, 3}}
    ],
    [begin
         ?assertEqual(Before, Get()),
         {Id, #{previous := Before, new := After}} = exec(Action),
         ?assertEqual(After, Get()),
         {ok, #{receipt := Rb, rollback_of := Id, restored := Before, replaced := After}} = autonomic_actuator:rollback(Id),
         ?assertEqual(Before, Get()),
         {<<"execute.rollback">>, #{rollback_of := Id, rolled_back := Action, restored := Before, outcome := ok}, _} = stored(Rb),
         ?assertNot(lists:member(Id, [R || #{receipt := R} <- autonomic_actuator:active()]))
     end || {Action, Get, Before, After} <- Steps],
    %% The pause case: the tenant was paused already; pausing again and rolling back leaves it
    %% paused (the value it had), and the shed rollback to `off' works as well.
    {ok, {10, 3}} = autonomic_shed:clear(),
    {Id2, #{previous := off}} = exec({shed, 20, 2}),
    {ok, _} = autonomic_actuator:rollback(Id2),
    ?assertEqual(off, autonomic_shed:get()),
    ?assertEqual({30, true}, autonomic_bucket:controls(T)).

stacked_actions_roll_back_in_reverse_order(_Config) ->
    T = tenant(),
    {A, _} = exec({throttle, T, 20}),
    {B, #{replaced_receipt := A}} = exec({throttle, T, 50}),
    {C, #{replaced_receipt := B, previous := 50}} = exec({throttle, T, 80}),
    %% Only the latest on a setting is in force, and only it can be rolled back.
    Active = [R || #{receipt := R} <- autonomic_actuator:active()],
    ?assert(lists:member(C, Active)),
    ?assertNot(lists:member(A, Active) orelse lists:member(B, Active)),
    ?assertEqual({error, {superseded, C}}, autonomic_actuator:rollback(A)),
    ?assertEqual({error, {superseded, C}}, autonomic_actuator:rollback(B)),
    {ok, _} = autonomic_actuator:rollback(C),
    ?assertEqual({50, false}, autonomic_bucket:controls(T)),
    ?assert(lists:member(B, [R || #{receipt := R} <- autonomic_actuator:active()])),
    {ok, _} = autonomic_actuator:rollback(B),
    ?assertEqual({20, false}, autonomic_bucket:controls(T)),
    {ok, _} = autonomic_actuator:rollback(A),
    ?assertEqual({0, false}, autonomic_bucket:controls(T)),
    %% Settings are independent: another tenant's throttle is another stack.
    U = tenant(),
    {D, _} = exec({throttle, U, 10}),
    {E, _} = exec({throttle, T, 60}),
    {ok, _} = autonomic_actuator:rollback(D),
    ?assertEqual({0, false}, autonomic_bucket:controls(U)),
    ?assertEqual({60, false}, autonomic_bucket:controls(T)),
    {ok, _} = autonomic_actuator:rollback(E).

refused_rollbacks(_Config) ->
    T = tenant(),
    Size0 = autonomic_ledger:size(),
    %% Changed since by something else: restoring would undo that change.
    {Id, _} = exec({throttle, T, 40}),
    {ok, 40} = autonomic_bucket:throttle(T, 45),
    ?assertEqual({error, {superseded, {changed_to, 45}}}, autonomic_actuator:rollback(Id)),
    ?assertNot(lists:member(Id, [R || #{receipt := R} <- autonomic_actuator:active()])),
    ?assertEqual({45, false}, autonomic_bucket:controls(T)),
    %% Rolled back already; a rollback itself.
    {Id2, _} = exec({degrade, minimal}),
    {ok, #{receipt := Rb}} = autonomic_actuator:rollback(Id2),
    ?assertEqual({error, {already_rolled_back, Rb}}, autonomic_actuator:rollback(Id2)),
    ?assertEqual({error, {irreversible, rollback}}, autonomic_actuator:rollback(Rb)),
    %% Unknown, malformed, and receipts that are not the actuator's.
    ?assertEqual({error, not_found}, autonomic_actuator:rollback(<<"01a00000-0000-7000-8000-000000000000">>)),
    ?assertMatch({error, _}, autonomic_actuator:rollback(<<"nonsense">>)),
    ?assertEqual({error, {invalid_receipt_id, 42}}, autonomic_actuator:rollback(42)),
    {ok, #{id := Other}} = autonomic_ledger:append(<<"restart_child">>, <<"db_pool: ok">>),
    ?assertEqual({error, {not_an_actuator_receipt, Other}}, autonomic_actuator:rollback(Other)),
    %% Refusals write nothing: the receipts are the 2 actions, 1 rollback and the foreign one.
    ?assertEqual(Size0 + 4, autonomic_ledger:size()).

restarts(Config) ->
    Names = #{top => act_top, mid_a => act_a, mid_b => act_b, slow => #{w1 => #{stop_ms => 500}}},
    Top = ctl_test_sup:start_tree(Names),
    try
        Before = ctl_test_sup:snapshot(Names),
        {Id, #{outcome := ok, previous := Old, new := New, result := #{elapsed_us := _}, reversible := false}} =
            exec({restart, act_a, w2, quick}),
        After = ctl_test_sup:snapshot(Names),
        ?assertEqual([maps:get(w2, Before)], Old),
        ?assertEqual([maps:get(w2, After)], New),
        {<<"execute.restart">>, #{previous := Old, new := New, outcome := ok}, _} = stored(Id),
        ?assertEqual({error, {irreversible, restart}}, autonomic_actuator:rollback(Id)),
        ?assertNot(lists:member(Id, [R || #{receipt := R} <- autonomic_actuator:active()])),
        %% Refused and timed-out restarts are receipted with their outcome.
        ?assertEqual({error, {protected, kernel_sup}}, autonomic_actuator:execute({restart, kernel_sup, code_server, quick})),
        {ok, [Last]} = autonomic_ledger:tail(1),
        {<<"execute.restart">>, #{outcome := {error, {protected, kernel_sup}}}, _} = stored(maps:get(id, Last)),
        ?assertEqual({error, timeout}, autonomic_actuator:execute({restart, act_a, w1, full}, #{timeout => 100})),
        {ok, [Last2]} = autonomic_ledger:tail(1),
        {_, #{outcome := {error, timeout}}, _} = stored(maps:get(id, Last2)),
        ok = autonomic_ct:wait_until(fun() -> maps:get(busy, supervisor_controller:info()) =:= [] end, 5000)
    after
        ok = sys:terminate(Top, shutdown)
    end,
    Config.

failed_actions_are_receipted_and_escalated(_Config) ->
    Self = self(),
    ok = autonomic_escalate:register_handler(test_pager, fun(E) -> Self ! {escalated, E} end),
    try
        %% db's active target is db1: a failover from db2 is refused by the registry.
        ?assertEqual({error, {not_active, db2, db1}}, autonomic_actuator:execute({failover, db, db2, {replica, 3}})),
        {ok, [Last]} = autonomic_ledger:tail(1),
        Id = maps:get(id, Last),
        {<<"execute.failover">>, #{outcome := {error, {not_active, db2, db1}}, previous := undefined}, _} = stored(Id),
        receive
            {escalated, #{severity := error, detail := #{receipt := Id}}} -> ok
        after 5000 -> error(not_escalated)
        end,
        ?assertEqual({error, {not_in_force, Id}}, autonomic_actuator:rollback(Id)),
        ?assertEqual({ok, db1}, autonomic_backends:target(db))
    after
        ok = autonomic_escalate:unregister_handler(test_pager)
    end.

%% With the ledger closed, an action is undone: nothing stays in force without its receipt.
no_action_without_its_receipt(_Config) ->
    T = tenant(),
    {ok, 0} = autonomic_bucket:throttle(T, 10),
    ok = autonomic_ledger:close(audit),
    try
        ?assertMatch({error, {ledger, _}}, autonomic_actuator:execute({throttle, T, 90})),
        ?assertEqual({10, false}, autonomic_bucket:controls(T))
    after
        %% The owner reopens the ledger when it restarts.
        ok = supervisor:terminate_child(autonomic_sup, autonomic_ledger_owner),
        {ok, _} = supervisor:restart_child(autonomic_sup, autonomic_ledger_owner)
    end,
    {_, _} = exec({throttle, T, 90}),
    ?assertEqual({90, false}, autonomic_bucket:controls(T)).

%% The governor's answers, enforced: {throttle, 50} halves the tenant's bucket.
governor_actions(_Config) ->
    T = tenant(),
    {ok, intervene, {throttle, 50} = G} = autonomic:transition(T, {signal, cpu, 92}),
    {ok, Action} = autonomic_actuator:from_governor(T, G),
    ?assertEqual({throttle, T, 50}, Action),
    ok = autonomic_bucket:set_rate(T, 1000, 10),
    {_, _} = exec(Action),
    ?assertMatch({ok, #{admitted_rate := 500.0}}, autonomic_bucket:info(T)),
    ?assertEqual({ok, {pause, T}}, autonomic_actuator:from_governor(T, pause)),
    ?assertEqual(none, autonomic_actuator:from_governor(T, none)),
    %% A pro tenant's shed reaches priorities below 3 (pro is 2).
    ok = autonomic_entitlements:provision(T, pro),
    ?assertEqual({ok, {shed, 50, 3}}, autonomic_actuator:from_governor(T, {shed, 50})),
    ?assertEqual({ok, {shed, 50, 1}}, autonomic_actuator:from_governor(tenant(), {shed, 50})),
    ?assertEqual({error, {unknown_governor_action, stop}}, autonomic_actuator:from_governor(T, stop)),
    ?assertEqual({error, {invalid_percent, 150}}, autonomic_actuator:from_governor(T, {throttle, 150})).

bad_input_writes_nothing(_Config) ->
    Size0 = autonomic_ledger:size(),
    Bad = [
        {{throttle, <<"t">>, 101}, {invalid_percent, 101}},
        {{throttle, <<"t">>, -1}, {invalid_percent, -1}},
        {{throttle, <<"t">>, 50.0}, {invalid_percent, 50.0}},
        {{throttle, t, 50}, invalid_tenant},
        {{throttle, <<>>, 50}, invalid_tenant},
        {{pause, "t"}, invalid_tenant},
        {{shed, 200, 3}, {invalid_percent, 200}},
        {{shed, 20, high}, {invalid_priority, high}},
        {{degrade, panic}, {invalid_level, panic}},
        {{failover, nodb, a, b}, {unknown_backend, nodb}},
        {{failover, db, db9, db1}, {unknown_target, db9}},
        {{failover, db, db1, db9}, {unknown_target, db9}},
        {{failover, db, db1, db1}, {same_target, db1}},
        {{restart, "sup", w, quick}, {invalid_supref, "sup"}},
        {{restart, sup, w, warm}, {invalid_restart_type, warm}},
        {{reboot, everything}, {unknown_action, {reboot, everything}}},
        {throttle, {unknown_action, throttle}}
    ],
    [?assertEqual({error, Why}, autonomic_actuator:execute(A)) || {A, Why} <- Bad],
    ?assertEqual({error, {invalid_timeout, 0}}, autonomic_actuator:execute({degrade, minimal}, #{timeout => 0})),
    ?assertEqual({error, {unknown_option, 'when'}}, autonomic_actuator:execute({degrade, minimal}, #{'when' => now})),
    ?assertEqual({error, {invalid_options, x}}, autonomic_actuator:execute({degrade, minimal}, x)),
    ?assertEqual(Size0, autonomic_ledger:size()),
    ?assertEqual(normal, autonomic_degrade:level()).

%% After everything above (and a receipt with a reason): the chain verifies, and a receipt is
%% provably in the ledger.
the_chain_verifies(_Config) ->
    {ok, #{receipt := Id}} = autonomic_actuator:execute({shed, 5, 1}, #{reason => "cpu at 97% for 3 samples"}),
    {_, #{reason := <<"cpu at 97% for 3 samples">>}, _} = stored(Id),
    ?assertEqual(ok, autonomic_ledger:verify()),
    {ok, #{seq := Seq} = R} = autonomic_ledger:get(Id),
    {ok, Proof} = autonomic_ledger:inclusion_proof(Seq),
    ?assertEqual(ok, autonomic_ledger_verify:inclusion(R, Proof)).
