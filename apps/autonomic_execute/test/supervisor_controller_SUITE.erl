%%% @doc supervisor_controller on real supervisors with real children, on this node and on a real
%%% peer node (`{Name, Node}', through erpc): after each restart type exactly the processes it
%%% names are new (and started in start order), every other process of the tree is the same;
%%% results are returned verified; OTP's and autonomic's supervisors are refused; cooldown, one
%%% operation per supervisor (also against another node), timeouts that never cut an operation
%%% half way; adding, removing and listing children; every bad input is `{error, Reason}'.
-module(supervisor_controller_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, groups/0, suite/0, init_per_suite/1, end_per_suite/1, init_per_group/2, end_per_group/2,
         init_per_testcase/2, end_per_testcase/2]).
-export([quick_restarts_one_child/1, full_restarts_every_child_in_start_order/1,
         cold_restarts_the_supervisor_through_its_parent/1, add_remove_which/1,
         protected_supervisors_are_refused/1, cooldown_per_target/1, one_operation_per_supervisor/1,
         a_timeout_never_cuts_an_operation/1, temporary_children/1, a_child_that_fails_to_start/1, refusals/1,
         bad_input/1]).

suite() -> [{timetrap, {minutes, 3}}].

all() -> [{group, local}, {group, remote}, {group, safety}].

groups() ->
    Restarts = [quick_restarts_one_child, full_restarts_every_child_in_start_order,
                cold_restarts_the_supervisor_through_its_parent, add_remove_which],
    [{local, [], Restarts}, {remote, [], Restarts},
     {safety, [], [protected_supervisors_are_refused, cooldown_per_target, one_operation_per_supervisor,
                   a_timeout_never_cuts_an_operation, temporary_children, a_child_that_fails_to_start, refusals,
                   bad_input]}].

init_per_suite(Config) ->
    ok = autonomic_ct:ensure_distributed(),
    Env = execute_test_env:start([{restart_cooldown_ms, 0}]),
    Data = filename:join(?config(priv_dir, Config), "peer"),
    {Peer, Node} = autonomic_ct:start_peer(ctl, #{env => [{autonomic, data_dir, Data},
                                                          {autonomic_monitor, metrics_port, 0}]}),
    ok = erpc:call(Node, ctl_test_sup, ensure_log, []),
    [{env, Env}, {peer, Peer}, {peer_node, Node} | Config].

end_per_suite(Config) ->
    peer:stop(?config(peer, Config)),
    execute_test_env:stop(?config(env, Config)).

init_per_group(remote, Config) ->
    [{node, ?config(peer_node, Config)} | Config];
init_per_group(_, Config) ->
    [{node, node()} | Config].

end_per_group(_, _Config) ->
    ok.

init_per_testcase(TC, Config) ->
    ok = application:set_env(autonomic_execute, restart_cooldown_ms, 0),
    S = atom_to_list(TC),
    Names = #{top => list_to_atom("top_" ++ S), mid_a => list_to_atom("mid_a_" ++ S),
              mid_b => list_to_atom("mid_b_" ++ S)},
    Slow = case TC of
        one_operation_per_supervisor -> #{w1 => #{stop_ms => 600, shutdown => 5000}};
        a_timeout_never_cuts_an_operation -> #{w1 => #{stop_ms => 600, shutdown => 5000}};
        _ -> #{}
    end,
    Node = ?config(node, Config),
    Top = erpc:call(Node, ctl_test_sup, start_tree, [Names#{slow => Slow}]),
    [{names, Names}, {top, Top} | Config].

end_per_testcase(_TC, Config) ->
    ok = application:set_env(autonomic_execute, restart_cooldown_ms, 0),
    %% An orderly shutdown whoever its parent was (a remote tree's parent was an erpc process).
    ok = sys:terminate(?config(top, Config), shutdown).

%%% Helpers

%% How a test names a supervisor of its tree: a local name, or {Name, Node} on the peer.
ref(Config, Key) ->
    Name = maps:get(Key, ?config(names, Config)),
    case ?config(node, Config) of
        N when N =:= node() -> Name;
        N -> {Name, N}
    end.

snapshot(Config) ->
    erpc:call(?config(node, Config), ctl_test_sup, snapshot, [?config(names, Config)]).

log(Config) ->
    erpc:call(?config(node, Config), ctl_test_sup, log, []).

clear_log(Config) ->
    ok = erpc:call(?config(node, Config), ctl_test_sup, clear_log, []).

alive(Config, Pids) ->
    erpc:call(?config(node, Config), fun() -> [is_process_alive(P) || P <- Pids] end).

changed(Before, After) ->
    lists:sort([K || K <- maps:keys(Before), maps:get(K, Before) =/= maps:get(K, After)]).

%%% Restarts

quick_restarts_one_child(Config) ->
    Before = snapshot(Config),
    clear_log(Config),
    {ok, #{elapsed_us := Us, old_pids := Old, new_pids := New, children := Children}} =
        supervisor_controller:restart_child(ref(Config, mid_a), w2, quick),
    After = snapshot(Config),
    ?assertEqual([w2], changed(Before, After)),
    ?assertEqual([maps:get(w2, Before)], Old),
    ?assertEqual([maps:get(w2, After)], New),
    ?assertEqual([#{id => w2, old => maps:get(w2, Before), new => maps:get(w2, After)}], Children),
    ?assertEqual([true], alive(Config, New)),
    ?assertEqual([false], alive(Config, Old)),
    ?assert(is_integer(Us) andalso Us > 0),
    ?assertMatch([{_, w2, _}], log(Config)).

full_restarts_every_child_in_start_order(Config) ->
    Before = snapshot(Config),
    clear_log(Config),
    {ok, #{old_pids := Old, new_pids := New}} = supervisor_controller:restart_child(ref(Config, mid_a), w3, full),
    After = snapshot(Config),
    %% Every child of mid_a, nothing else (not mid_a itself).
    ?assertEqual([w1, w2, w3], changed(Before, After)),
    ?assertEqual([maps:get(K, Before) || K <- [w1, w2, w3]], Old),
    ?assertEqual([maps:get(K, After) || K <- [w1, w2, w3]], New),
    ?assertEqual([true, true, true], alive(Config, New)),
    ?assertEqual([false, false, false], alive(Config, Old)),
    %% Started in start order.
    ?assertEqual([{w1, maps:get(w1, After)}, {w2, maps:get(w2, After)}, {w3, maps:get(w3, After)}],
                 [{Id, P} || {_, Id, P} <- log(Config)]).

cold_restarts_the_supervisor_through_its_parent(Config) ->
    Before = snapshot(Config),
    clear_log(Config),
    {ok, #{old_pids := Old, new_pids := New, children := Children}} =
        supervisor_controller:restart_child(ref(Config, mid_a), w1, cold),
    After = snapshot(Config),
    %% mid_a and all of its children; mid_b, its children and the top supervisor untouched.
    ?assertEqual([mid_a, w1, w2, w3], changed(Before, After)),
    ?assertEqual([maps:get(K, Before) || K <- [mid_a, w1, w2, w3]], Old),
    ?assertEqual([maps:get(K, After) || K <- [mid_a, w1, w2, w3]], New),
    ?assertEqual([w1, w2, w3], [Id || #{id := Id} <- Children]),
    ?assertEqual([true, true, true, true], alive(Config, New)),
    ?assertEqual([false, false, false, false], alive(Config, Old)),
    ?assertEqual([w1, w2, w3], [Id || {_, Id, _} <- log(Config)]),
    %% The parent has the new supervisor under the same id.
    {ok, TopKids} = supervisor_controller:which_children(ref(Config, top)),
    ?assertEqual([{maps:get(mid_a, ?config(names, Config)), maps:get(mid_a, After)},
                  {maps:get(mid_b, ?config(names, Config)), maps:get(mid_b, After)}],
                 [{Id, P} || {Id, P, supervisor, _} <- TopKids]).

add_remove_which(Config) ->
    Sup = ref(Config, mid_b),
    Spec = #{id => x3, start => {ctl_test_worker, start_link, [x3, #{}]}},
    {ok, Pid} = supervisor_controller:add_child(Sup, Spec),
    ?assertEqual([true], alive(Config, [Pid])),
    {ok, Kids} = supervisor_controller:which_children(Sup),
    ?assertMatch([{x1, _, worker, _}, {x2, _, worker, _}, {x3, Pid, worker, [ctl_test_worker]}], Kids),
    ?assertMatch({error, {already_started, Pid}}, supervisor_controller:add_child(Sup, Spec)),
    ?assertEqual(ok, supervisor_controller:remove_child(Sup, x3)),
    ?assertEqual([false], alive(Config, [Pid])),
    ?assertMatch({ok, [{x1, _, _, _}, {x2, _, _, _}]}, supervisor_controller:which_children(Sup)),
    ?assertEqual({error, {no_such_child, x3}}, supervisor_controller:remove_child(Sup, x3)),
    %% The supervisor's own checks of a spec.
    ?assertEqual({error, {invalid_mfa, nowhere}}, supervisor_controller:add_child(Sup, #{id => x4, start => nowhere})).

%%% Safety

protected_supervisors_are_refused(Config) ->
    Peer = ?config(peer_node, Config),
    Own = [kernel_sup, kernel_safe_sup, logger_sup, sasl_sup, os_mon_sup, inets_sup,
           %% Not in the list of names: refused because inets owns it.
           httpc_sup,
           autonomic_sup, autonomic_kb_sup, autonomic_monitor_sup, autonomic_execute_sup, autonomic_actuation_sup,
           {kernel_sup, node()}, {kernel_sup, Peer}, {autonomic_sup, Peer}, {logger_sup, Peer}],
    [begin
         ?assertEqual({error, {protected, Sup}}, supervisor_controller:restart_child(Sup, any, quick)),
         ?assertEqual({error, {protected, Sup}}, supervisor_controller:restart_child(Sup, any, cold)),
         ?assertEqual({error, {protected, Sup}}, supervisor_controller:add_child(Sup, #{id => x, start => {m, f, []}})),
         ?assertEqual({error, {protected, Sup}}, supervisor_controller:remove_child(Sup, any)),
         ?assertEqual(true, supervisor_controller:is_protected(Sup)),
         %% Reading is allowed.
         ?assertMatch({ok, [_ | _]}, supervisor_controller:which_children(Sup))
     end || Sup <- Own],
    ?assertEqual(false, supervisor_controller:is_protected(ref(Config, mid_a))),
    %% Nothing was touched: kernel_sup's children are the same processes.
    {ok, K1} = supervisor_controller:which_children(kernel_sup),
    {ok, K2} = supervisor_controller:which_children(kernel_sup),
    ?assertEqual(K1, K2),
    %% More supervisors can be protected by name or by application.
    MidA = ref(Config, mid_a),
    ok = application:set_env(autonomic_execute, protected_supervisors, [MidA]),
    try
        ?assertEqual({error, {protected, MidA}}, supervisor_controller:restart_child(MidA, w1, quick))
    after
        ok = application:set_env(autonomic_execute, protected_supervisors, [])
    end,
    ?assert(autonomic_metrics:value(autonomic_restarts_total, #{type => quick, outcome => refused}) >= 17).

cooldown_per_target(Config) ->
    ok = application:set_env(autonomic_execute, restart_cooldown_ms, 1000),
    MidA = ref(Config, mid_a),
    {ok, _} = supervisor_controller:restart_child(MidA, w1, quick),
    {error, {cooldown, MidA, Left}} = supervisor_controller:restart_child(MidA, w2, full),
    ?assert(Left > 0 andalso Left =< 1000),
    Key = {MidA, node()},
    ?assertMatch(#{cooldowns := #{Key := _}}, supervisor_controller:info()),
    %% Another supervisor has its own cooldown; adding and removing are not restarts.
    {ok, _} = supervisor_controller:restart_child(ref(Config, mid_b), x1, quick),
    {ok, _} = supervisor_controller:add_child(MidA, #{id => w4, start => {ctl_test_worker, start_link, [w4, #{}]}}),
    %% A refused restart starts no cooldown.
    ok = application:set_env(autonomic_execute, restart_cooldown_ms, 300),
    timer:sleep(300),
    {error, {no_such_child, nope}} = supervisor_controller:restart_child(MidA, nope, quick),
    {ok, _} = supervisor_controller:restart_child(MidA, w2, quick).

%% While a restart runs (w1 takes 600 ms to stop), a second operation on the same supervisor is
%% refused: by this node's controller, and by the lock on the target node when another node asks.
one_operation_per_supervisor(Config) ->
    MidA = ref(Config, mid_a),
    Self = self(),
    spawn_link(fun() -> Self ! {first, supervisor_controller:restart_child(MidA, w1, quick)} end),
    ok = autonomic_ct:wait_until(fun() -> supervisor_controller:info() =/= #{busy => [], cooldowns => #{}} end, 2000),
    ?assertEqual({error, {busy, MidA}}, supervisor_controller:restart_child(MidA, w2, quick)),
    ?assertEqual({error, {busy, MidA}}, supervisor_controller:remove_child(MidA, w3)),
    %% Another node's controller goes straight to the ops on this node: the lock refuses it.
    Protection = #{apps => [], names => []},
    ?assertEqual({refused, {busy, MidA}},
                 erpc:call(?config(peer_node, Config), erpc, call,
                           [node(), supervisor_controller_ops, execute, [{restart, MidA, w2, quick}, Protection]])),
    %% Other supervisors are free.
    {ok, _} = supervisor_controller:restart_child(ref(Config, mid_b), x2, quick),
    receive {first, R} -> ?assertMatch({ok, _}, R) after 10000 -> error(no_first) end,
    {ok, _} = supervisor_controller:restart_child(MidA, w2, quick).

a_timeout_never_cuts_an_operation(Config) ->
    MidA = ref(Config, mid_a),
    #{w1 := Old} = snapshot(Config),
    ?assertEqual({error, timeout}, supervisor_controller:restart_child(MidA, w1, quick, #{timeout => 100})),
    %% Still running: busy until w1 has stopped and started again.
    ?assertEqual({error, {busy, MidA}}, supervisor_controller:restart_child(MidA, w1, quick)),
    ok = autonomic_ct:wait_until(fun() -> maps:get(busy, supervisor_controller:info()) =:= [] end, 5000),
    #{w1 := New} = snapshot(Config),
    ?assertNotEqual(Old, New),
    ?assertEqual([true], alive(Config, [New])).

%% OTP never restarts a temporary child (and keeps no arguments to): a quick restart refuses it,
%% a full restart terminates it without restarting it, as one_for_all would.
temporary_children(Config) ->
    MidB = ref(Config, mid_b),
    Spec = #{id => tmp, start => {ctl_test_worker, start_link, [tmp, #{}]}, restart => temporary},
    {ok, Tmp} = supervisor_controller:add_child(MidB, Spec),
    ?assertEqual({error, {temporary_child, tmp}}, supervisor_controller:restart_child(MidB, tmp, quick)),
    ?assertEqual([true], alive(Config, [Tmp])),
    #{x1 := X1, x2 := X2} = snapshot(Config),
    {ok, #{old_pids := Old, new_pids := [N1, N2], children := Children}} =
        supervisor_controller:restart_child(MidB, x1, full),
    ?assertEqual([X1, X2, Tmp], Old),
    ?assertMatch([#{id := x1, old := X1, new := N1}, #{id := x2, old := X2, new := N2},
                  #{id := tmp, old := Tmp, new := undefined}], Children),
    ?assertEqual([false], alive(Config, [Tmp])),
    ?assertMatch({ok, [{x1, N1, _, _}, {x2, N2, _, _}]}, supervisor_controller:which_children(MidB)),
    %% A supervisor that is a temporary child of its parent cannot be restarted cold.
    Top = ref(Config, top),
    {ok, _} = supervisor_controller:add_child(Top, #{id => tsup, restart => temporary, type => supervisor,
                                                     start => {ctl_test_sup, start_link, [tsup_temporary_children, one_for_one,
                                                                                         [#{id => k, start => {ctl_test_worker, start_link, [k, #{}]}}]]}}),
    ?assertEqual({error, {temporary_child, tsup}},
                 supervisor_controller:restart_child(tsup_temporary_children, k, cold)).

%% A full restart in which one child fails to start again still starts the others, and says
%% which did not come back.
a_child_that_fails_to_start(Config) ->
    MidA = ref(Config, mid_a),
    Before = snapshot(Config),
    true = ets:insert(ctl_test_log, {{fail, w2}}),
    try
        ?assertMatch({error, {not_restarted, [{restart_failed, w2, _}]}},
                     supervisor_controller:restart_child(MidA, w1, full))
    after
        true = ets:delete(ctl_test_log, {fail, w2})
    end,
    After = snapshot(Config),
    ?assertEqual([true, true], alive(Config, [maps:get(w1, After), maps:get(w3, After)])),
    ?assertEqual([w1, w2, w3], changed(Before, After)),
    ?assertEqual(undefined, maps:get(w2, After)),
    %% The restart failed: a quick restart of w2 brings it back.
    {ok, #{new_pids := [W2]}} = supervisor_controller:restart_child(MidA, w2, quick),
    ?assertEqual([true], alive(Config, [W2])).

refusals(Config) ->
    Top = ref(Config, top),
    MidA = ref(Config, mid_a),
    ?assertEqual({error, {no_parent_supervisor, Top}},
                 supervisor_controller:restart_child(Top, maps:get(mid_a, ?config(names, Config)), cold)),
    ?assertEqual({error, {no_such_child, w9}}, supervisor_controller:restart_child(MidA, w9, quick)),
    ?assertEqual({error, {noproc, no_such_sup}}, supervisor_controller:restart_child(no_such_sup, w1, quick)),
    ?assertEqual({error, {noproc, no_such_sup}}, supervisor_controller:which_children(no_such_sup)),
    %% A worker is not a supervisor.
    #{w1 := W1} = snapshot(Config),
    ?assertEqual({error, {not_a_supervisor, W1}}, supervisor_controller:restart_child(W1, w1, quick)),
    %% simple_one_for_one children have no ids to restart from.
    {ok, Sofo} = supervisor:start_link(ctl_test_sup, {simple_one_for_one,
                                                      [#{id => w, start => {ctl_test_worker, start_link, [w]}}]}),
    unlink(Sofo),
    {ok, _} = supervisor:start_child(Sofo, [#{}]),
    ?assertEqual({error, {simple_one_for_one, Sofo}}, supervisor_controller:restart_child(Sofo, w, quick)),
    exit(Sofo, shutdown),
    %% An unreachable node.
    ?assertMatch({error, {erpc, 'nobody@nowhere', noconnection}},
                 supervisor_controller:restart_child({mid, 'nobody@nowhere'}, w1, quick)),
    %% A child whose start returns ignore: the restart cannot be verified.
    {ok, _} = supervisor_controller:add_child(MidA, #{id => ig, start => {ctl_test_worker, start_link, [ig, #{}]}}),
    ok = supervisor:terminate_child(whereis(MidA), ig),
    ok = supervisor:delete_child(whereis(MidA), ig),
    {ok, undefined} = supervisor:start_child(whereis(MidA), #{id => ig, start => {ctl_test_worker, start_link, [ig, #{ignore => true}]}}),
    ?assertEqual({error, {not_started, ig, ignore}}, supervisor_controller:restart_child(MidA, ig, quick)).

bad_input(_Config) ->
    ?assertEqual({error, {invalid_supref, "sup"}}, supervisor_controller:restart_child("sup", w1, quick)),
    ?assertEqual({error, {invalid_supref, {a, b, c}}}, supervisor_controller:restart_child({a, b, c}, w1, quick)),
    ?assertEqual({error, {invalid_supref, {"a", node()}}}, supervisor_controller:which_children({"a", node()})),
    ?assertEqual({error, {invalid_restart_type, warm}}, supervisor_controller:restart_child(sup, w1, warm)),
    ?assertEqual({error, {invalid_timeout, 0}}, supervisor_controller:restart_child(sup, w1, quick, #{timeout => 0})),
    ?assertEqual({error, {invalid_options, []}}, supervisor_controller:restart_child(sup, w1, quick, [])),
    ?assertEqual({error, {invalid_child_spec, spec}}, supervisor_controller:add_child(sup, spec)),
    ?assertEqual({error, {invalid_supref, 42}}, supervisor_controller:remove_child(42, w1)),
    ?assertEqual({error, {invalid_supref, 42}}, supervisor_controller:is_protected(42)).
