%%% @doc The planner C-node for real: a Rust hidden node started by the `autonomic'
%%% application, reached through a real epmd, killed with `kill -9'. Every requirement of the
%%% planner's issue has a test here:
%%%
%%% <ol>
%%% <li>`net_adm:ping/1' gives `pong'; the C-node is a hidden node named after its owner.</li>
%%% <li>A call returns a valid plan; several callers are served at once.</li>
%%% <li>The C-node and the built-in planner give the same plan and the same errors (PropEr,
%%%     random inputs, valid and corrupted).</li>
%%% <li>`kill -9' of the C-node: plans keep coming (from the built-in planner) and the C-node is
%%%     back within 1 s.</li>
%%% <li>A wrong cookie fails the handshake; the cookie is not on the C-node's command line.</li>
%%% <li>10,000 calls leave the C-node's memory flat.</li>
%%% <li>The owner node stops, or is killed with `kill -9': no planner process remains.</li>
%%% <li>Malformed requests, garbage messages, unknown registered names, huge and deeply nested
%%%     terms: errors or silence, and the C-node stays up.</li>
%%% <li>Fallbacks are counted by reason; late replies never reach a caller that gave up.</li>
%%% </ol>
-module(autonomic_planner_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("proper/include/proper.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([ping_gives_pong/1, hidden_node_named_after_its_owner/1, call_returns_a_valid_plan/1,
         several_callers_at_once/1, cnode_and_builtin_agree/1, errors_agree/1,
         kill_9_falls_back_and_comes_back_within_1s/1, wrong_cookie_is_rejected/1,
         cookie_is_not_on_the_command_line/1, memory_stays_flat_over_10000_calls/1,
         owner_stop_leaves_no_cnode/1, owner_kill_9_leaves_no_cnode/1,
         garbage_and_unknown_names/1, huge_and_deep_terms/1, plain_reference_tags/1,
         late_replies_never_reach_the_caller/1, fallbacks_are_counted_by_reason/1,
         disabled_cnode_uses_the_builtin_planner/1]).

suite() -> [{timetrap, {minutes, 5}}].

all() ->
    [ping_gives_pong, hidden_node_named_after_its_owner, call_returns_a_valid_plan,
     several_callers_at_once, cnode_and_builtin_agree, errors_agree, plain_reference_tags,
     late_replies_never_reach_the_caller, garbage_and_unknown_names, huge_and_deep_terms,
     memory_stays_flat_over_10000_calls, wrong_cookie_is_rejected,
     cookie_is_not_on_the_command_line, fallbacks_are_counted_by_reason,
     kill_9_falls_back_and_comes_back_within_1s, owner_stop_leaves_no_cnode,
     owner_kill_9_leaves_no_cnode, disabled_cnode_uses_the_builtin_planner].

init_per_suite(Config) ->
    ok = autonomic_ct:ensure_distributed(),
    {ok, _} = application:ensure_all_started(autonomic),
    {ok, Node} = autonomic_planner:await_cnode(10000),
    [{cnode, Node} | Config].

end_per_suite(_Config) ->
    application:stop(autonomic).

init_per_testcase(_, Config) ->
    %% Every test starts with a ready C-node (a previous test may have killed it).
    {ok, Node} = autonomic_planner:await_cnode(10000),
    lists:keystore(cnode, 1, Config, {cnode, Node}).

end_per_testcase(_, _Config) ->
    ok.

%%% Inputs

analysis() ->
    #{failure_type => node_down, root_cause => host_lost, confidence => 0.9, affected_nodes => ['n2@h']}.

topology() ->
    #{nodes => [#{name => 'n1@h', headroom => 0.5}, #{name => 'n2@h', up => false},
                #{name => 'n3@h', headroom => 0.5}],
      services => [#{name => db, node => 'n2@h', load => 0.1},
                   #{name => <<"api">>, node => 'n2@h', depends_on => [db], load => 0.1}]}.

opts() ->
    #{topology => topology(), effectiveness => #{}, policy => #{}}.

%% A plan has DESIGN.md's shape, and its rollback undoes every reversible step.
valid_plan(#{strategy := S, steps := Steps, rollback := Rollback, estimated_ms := Ms,
             cost := #{downtime := D, resource := R, risk := K, total := T} = Cost,
             confidence := C, planner := P} = Plan) ->
    ?assertEqual(7, map_size(Plan)),
    ?assertEqual(4, map_size(Cost)),
    ?assert(lists:member(S, [supervisor_restart, quorum_reconfiguration, backend_failover,
                             load_shedding, graceful_degradation, throttle, pause, escalate])),
    ?assert(lists:member(P, [cnode, builtin])),
    ?assert(is_integer(Ms) andalso Ms >= 0),
    [?assert(is_float(X) andalso X >= 0.0) || X <- [D, R, K, T, C]],
    ?assertEqual(T, D + R + K),
    ?assert(C =< 1.0),
    ?assertMatch([_ | _], Steps),
    [?assert(is_atom(maps:get(action, Step))) || Step <- Steps ++ Rollback],
    Reversible = [Step || Step <- Steps, lists:member(maps:get(action, Step),
                                                      [remove_node, failover, shed, throttle, degrade, pause])],
    ?assertEqual(length(Reversible), length(Rollback)),
    ok.

%%% Tests

ping_gives_pong(Config) ->
    Node = ?config(cnode, Config),
    ?assertEqual(pong, net_adm:ping(Node)).

hidden_node_named_after_its_owner(Config) ->
    Node = ?config(cnode, Config),
    [Name, Host] = string:split(atom_to_list(node()), "@"),
    ?assertEqual(list_to_atom("planner_" ++ Name ++ "@" ++ Host), Node),
    pong = net_adm:ping(Node),
    ?assert(lists:member(Node, nodes(hidden))),
    ?assertNot(lists:member(Node, nodes())),
    {ok, Names} = erl_epmd:names(),
    ?assert(lists:keymember("planner_" ++ Name, 1, Names)).

call_returns_a_valid_plan(Config) ->
    Node = ?config(cnode, Config),
    Input = autonomic_planner:input(analysis(), opts()),
    {ok, Plan} = gen_server:call({planner, Node}, {plan, Input}, 2000),
    ok = valid_plan(Plan),
    %% Moving both services (5 s, plus 100 ms for the second step) beats changing the
    %% membership (10 s); db first (api depends on it), each to the node with most headroom.
    ?assertMatch(#{planner := cnode, strategy := backend_failover, estimated_ms := 5100,
                   steps := [#{action := failover, service := db, from := 'n2@h', to := 'n1@h'},
                             #{action := failover, service := <<"api">>, from := 'n2@h', to := 'n3@h'}],
                   rollback := [#{action := failback, service := <<"api">>, from := 'n3@h', to := 'n2@h'},
                                #{action := failback, service := db, from := 'n1@h', to := 'n2@h'}]}, Plan),
    %% Through the API, with every default.
    {ok, Plan2} = autonomic_planner:plan(analysis(), opts()),
    ?assertEqual(Plan, Plan2),
    {ok, Default} = autonomic_planner:plan(#{failure_type => process_crash, confidence => 1}),
    ok = valid_plan(Default),
    ?assertMatch(#{planner := cnode, strategy := escalate}, Default).

several_callers_at_once(Config) ->
    Node = ?config(cnode, Config),
    Self = self(),
    Big = planner_input_model:input(50, 500, 3),
    Small = autonomic_planner:input(analysis(), opts()),
    Pids = [spawn_link(fun() ->
                           Input = case I rem 5 of 0 -> Big; _ -> Small end,
                           Rs = [gen_server:call({planner, Node}, {plan, Input}, 5000) || _ <- lists:seq(1, 20)],
                           Self ! {done, self(), Rs}
                       end) || I <- lists:seq(1, 50)],
    Results = lists:append([receive {done, P, Rs} -> Rs after 60000 -> ct:fail(timeout) end || P <- Pids]),
    ?assertEqual(1000, length(Results)),
    [ok = valid_plan(P) || {ok, P} <- Results],
    ?assertEqual(1000, length([x || {ok, #{planner := cnode}} <- Results])),
    {ok, Stats} = autonomic_planner:cnode_stats(),
    ?assertEqual(0, maps:get(overloaded, Stats)).

cnode_and_builtin_agree(Config) ->
    Node = ?config(cnode, Config),
    #{topology_hits := Hits0} = element(2, autonomic_planner:cnode_stats()),
    Call = fun(In) -> strip(gen_server:call({planner, Node}, {plan, In}, 5000)) end,
    Builtin = fun(In) -> strip(autonomic_planner_builtin:plan(In)) end,
    %% Each input is planned twice by the C-node (the second time on the topology it kept from
    %% the first), then once more with its request broken in a way that leaves the topology
    %% alone: every answer must be the built-in planner's.
    Prop = ?FORALL({{Base, Input}, K}, {input_gen(), oneof(request_corruptions())},
                   safely(fun() ->
                       B = Builtin(Input),
                       C1 = Call(Input),
                       C2 = Call(Input),
                       Broken = planner_input_model:corrupt(K, Base),
                       BB = Builtin(Broken),
                       CB = Call(Broken),
                       ?WHENFAIL(ct:pal("input ~p~ncnode   ~p~nagain   ~p~nbuiltin ~p~n"
                                        "broken (~p): cnode ~p~nbuiltin ~p", [Input, C1, C2, B, K, CB, BB]),
                                 collect(kind(C1), C1 =:= B andalso C2 =:= B andalso CB =:= BB))
                   end, {Input, K})),
    ?assert(proper:quickcheck(Prop, [{numtests, 500}, {to_file, user}, noshrink])),
    #{topology_hits := Hits1} = element(2, autonomic_planner:cnode_stats()),
    ct:log("topology hits during the property: ~p", [Hits1 - Hits0]),
    ?assert(Hits1 - Hits0 >= 500).

%% The corruptions of planner_input_model that leave the topology as it is.
request_corruptions() ->
    [1, 2, 4, 5, 11, 12, 13, 14, 15, 16, 17, 19, 20, 22, 23, 24].

errors_agree(Config) ->
    Node = ?config(cnode, Config),
    Valid = planner_input_model:random(42, 6, 20),
    lists:foreach(
        fun(K) ->
            Input = planner_input_model:corrupt(K, Valid),
            C = gen_server:call({planner, Node}, {plan, Input}, 5000),
            B = autonomic_planner_builtin:plan(Input),
            ct:log("corruption ~p: ~p", [K, C]),
            ?assertMatch({error, {invalid_input, _}}, C),
            ?assertEqual(C, B)
        end, lists:seq(1, planner_input_model:ncorruptions())).

plain_reference_tags(Config) ->
    %% OTP before 24 tagged calls with a bare reference; the tag is echoed all the same.
    Node = ?config(cnode, Config),
    Ref = make_ref(),
    {planner, Node} ! {'$gen_call', {self(), Ref}, stats},
    receive {Ref, {ok, #{calls := _}}} -> ok after 2000 -> ct:fail(no_reply) end,
    Tag = {any, [term, 1]},
    {planner, Node} ! {'$gen_call', {self(), Tag}, {plan, autonomic_planner:input(analysis(), opts())}},
    receive {Tag, {ok, #{planner := cnode}}} -> ok after 2000 -> ct:fail(no_reply) end.

late_replies_never_reach_the_caller(Config) ->
    Node = ?config(cnode, Config),
    Input = autonomic_planner:input(analysis(), opts()),
    %% A timeout of 0 gives up before any reply can have come back (it needs a network round
    %% trip): every reply below is late.
    Late = [catch gen_server:call({planner, Node}, {plan, Input}, 0) || _ <- lists:seq(1, 20)],
    ?assert(lists:all(fun({'EXIT', {timeout, _}}) -> true; (_) -> false end, Late)),
    %% The replies come, to aliases that are no longer active: the runtime drops them.
    {ok, _} = gen_server:call({planner, Node}, {plan, Input}, 2000),
    timer:sleep(500),
    ?assertEqual({messages, []}, process_info(self(), messages)),
    %% The API gives up the same way and falls back.
    {ok, #{planner := builtin}} = autonomic_planner:plan(analysis(), (opts())#{timeout => 0}),
    timer:sleep(500),
    ?assertEqual({messages, []}, process_info(self(), messages)).

garbage_and_unknown_names(Config) ->
    Node = ?config(cnode, Config),
    #{os_pid := OsPid} = autonomic_planner:cnode_info(),
    {ok, S0} = autonomic_planner:cnode_stats(),
    %% Messages that are not calls: dropped.
    Garbage = [hello, 42, 3.14, <<"bin">>, {a, b}, [1, 2, 3], #{x => y}, self(), make_ref(),
               fun() -> ok end, {'$gen_call', nope}, {'$gen_call', {self()}, x},
               {'$gen_call', {not_a_pid, tag}, stats}, {'$gen_cast', stats}],
    [{planner, Node} ! G || G <- Garbage],
    [{net_kernel, Node} ! G || G <- Garbage],
    %% Calls with requests the C-node does not know or cannot use: errors.
    Call = fun(Req) -> gen_server:call({planner, Node}, Req, 2000) end,
    ?assertEqual({error, unknown_request}, Call(hello)),
    ?assertEqual({error, unknown_request}, Call({plan})),
    ?assertEqual({error, unknown_request}, Call({plan, a, b})),
    ?assertEqual({error, {invalid_input, {not_a_map, input}}}, Call({plan, [no, a, map]})),
    ?assertEqual({error, {invalid_input, {missing_key, input, analysis}}}, Call({plan, #{}})),
    ?assertEqual({error, unknown_request}, gen_server:call({net_kernel, Node}, what, 2000)),
    %% Unknown registered names: a call fails at once with noproc (the monitor fires), a send
    %% goes nowhere.
    T0 = erlang:monotonic_time(millisecond),
    ?assertExit({noproc, _}, gen_server:call({nobody, Node}, hello, 5000)),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 1000),
    {rex, Node} ! {call, erlang, halt, [], self()},
    {nobody, Node} ! hello,
    %% Still the same process, still answering.
    ?assertEqual(pong, net_adm:ping(Node)),
    {ok, Plan} = Call({plan, autonomic_planner:input(analysis(), opts())}),
    ok = valid_plan(Plan),
    ?assertMatch(#{os_pid := OsPid, status := ready}, autonomic_planner:cnode_info()),
    {ok, S1} = autonomic_planner:cnode_stats(),
    ct:log("stats before ~p~nafter ~p", [S0, S1]),
    ?assert(maps:get(dropped, S1) - maps:get(dropped, S0) >= length(Garbage)),
    ?assert(maps:get(unknown_name, S1) - maps:get(unknown_name, S0) >= 2),
    ?assertEqual(0, maps:get(panics, S1)).

huge_and_deep_terms(Config) ->
    Node = ?config(cnode, Config),
    #{os_pid := OsPid} = autonomic_planner:cnode_info(),
    %% 40 MB, over the 32 MB frame limit: answered from the frame's head, the rest skipped.
    Huge = binary:copy(<<"x">>, 40 * 1024 * 1024),
    ?assertMatch({error, {too_large, Size, 33554432}} when Size > 40000000,
                 gen_server:call({planner, Node}, {plan, #{analysis => Huge}}, 10000)),
    {planner, Node} ! {just, Huge},
    %% Nested deeper than 64: refused before any recursion could run deep.
    Deep = lists:foldl(fun(_, Acc) -> [Acc] end, [], lists:seq(1, 100000)),
    ?assertEqual({error, {bad_term, too_deep}}, gen_server:call({planner, Node}, {plan, Deep}, 5000)),
    {planner, Node} ! Deep,
    %% Over the planner's own limits: 10,001 nodes.
    TooMany = #{analysis => #{failure_type => x, confidence => 1},
                topology => #{nodes => [#{name => a} || _ <- lists:seq(1, 10001)]}},
    ?assertEqual({error, {invalid_input, {too_many, nodes, 10000}}},
                 gen_server:call({planner, Node}, {plan, TooMany}, 5000)),
    ?assertEqual({error, {invalid_input, {too_many, nodes, 10000}}},
                 autonomic_planner_builtin:plan(TooMany)),
    %% Still up, same process.
    ?assertEqual(pong, net_adm:ping(Node)),
    ?assertMatch({ok, #{planner := cnode}},
                 gen_server:call({planner, Node}, {plan, autonomic_planner:input(analysis(), opts())}, 2000)),
    ?assertMatch(#{os_pid := OsPid}, autonomic_planner:cnode_info()),
    {ok, #{too_large := TL}} = autonomic_planner:cnode_stats(),
    ?assert(TL >= 2).

memory_stays_flat_over_10000_calls(Config) ->
    Node = ?config(cnode, Config),
    #{os_pid := OsPid} = autonomic_planner:cnode_info(),
    Input = planner_input_model:input(20, 100, 11),
    Calls = fun(N) ->
        Self = self(),
        Pids = [spawn_link(fun() ->
                               [{ok, _} = gen_server:call({planner, Node}, {plan, Input}, 5000)
                                || _ <- lists:seq(1, N div 4)],
                               Self ! {done, self()}
                           end) || _ <- lists:seq(1, 4)],
        [receive {done, P} -> ok after 120000 -> ct:fail(timeout) end || P <- Pids],
        ok
    end,
    %% Warm up: the allocator's arenas and the worker threads reach their steady state.
    ok = Calls(2000),
    Before = rss_kb(OsPid),
    ok = Calls(10000),
    After = rss_kb(OsPid),
    ct:log("C-node RSS before ~p kB, after 10,000 calls ~p kB (request ~p bytes)",
           [Before, After, erlang:external_size(Input)]),
    %% A leak of the request (about 10 kB) on every call would be 100 MB.
    ?assert(After - Before < 2048).

wrong_cookie_is_rejected(Config) ->
    Node = ?config(cnode, Config),
    {ok, #{handshake_failures := F0}} = autonomic_planner:cnode_stats(),
    %% Another node, with another cookie.
    {ok, Peer, _} = peer:start(#{name => peer:random_name(wrong_cookie),
                                 args => ["-setcookie", "not_the_cookie"],
                                 connection => standard_io}),
    try
        ?assertEqual(pang, peer:call(Peer, net_adm, ping, [Node]))
    after
        peer:stop(Peer)
    end,
    %% This node, told a wrong cookie for the C-node.
    Right = erlang:get_cookie(),
    true = erlang:disconnect_node(Node),
    true = erlang:set_cookie(Node, wrong_cookie),
    ?assertEqual(pang, net_adm:ping(Node)),
    true = erlang:set_cookie(Node, Right),
    ?assertEqual(pong, net_adm:ping(Node)),
    {ok, #{handshake_failures := F1}} = autonomic_planner:cnode_stats(),
    ?assert(F1 - F0 >= 2).

cookie_is_not_on_the_command_line(_Config) ->
    #{os_pid := OsPid} = autonomic_planner:cnode_info(),
    Cookie = atom_to_binary(erlang:get_cookie()),
    {ok, Cmd} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/cmdline"),
    {ok, Env} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/environ"),
    ct:log("command line: ~p", [binary:replace(Cmd, <<0>>, <<" ">>, [global])]),
    ?assertEqual(nomatch, binary:match(Cmd, Cookie)),
    ?assertEqual(nomatch, binary:match(Env, Cookie)).

fallbacks_are_counted_by_reason(Config) ->
    Node = ?config(cnode, Config),
    Count = fun(Reason) -> autonomic_metrics:value(autonomic_planner_fallbacks_total, #{reason => Reason}) end,
    T0 = Count(timeout),
    %% A timeout of 0 cannot be met (see late_replies_never_reach_the_caller).
    Opts = (opts())#{timeout => 0},
    {ok, #{planner := builtin}} = autonomic_planner:plan(analysis(), Opts),
    ?assertEqual(T0 + 1, Count(timeout)),
    %% `planner => cnode' reports instead of falling back.
    ?assertEqual({error, {cnode, timeout}}, autonomic_planner:plan(analysis(), Opts#{planner => cnode})),
    ?assertEqual(T0 + 1, Count(timeout)),
    %% A rejected input is an answer, not a failure of the C-node: no fallback.
    Before = lists:sum([V || {_, V} <- fallbacks()]),
    ?assertMatch({error, {invalid_input, {bad_value, analysis, confidence}}},
                 autonomic_planner:plan(#{failure_type => x, confidence => 2}, opts())),
    ?assertEqual(Before, lists:sum([V || {_, V} <- fallbacks()])),
    %% The metrics are exported.
    Text = iolist_to_binary(autonomic_metrics:render()),
    ?assertNotEqual(nomatch, binary:match(Text, <<"autonomic_planner_fallbacks_total{reason=\"timeout\"}">>)),
    ?assertNotEqual(nomatch, binary:match(Text, <<"autonomic_planner_cnode_up 1">>)),
    pong = net_adm:ping(Node),
    %% Late replies of the calls given up are dropped.
    timer:sleep(300),
    ?assertEqual({messages, []}, process_info(self(), messages)).

kill_9_falls_back_and_comes_back_within_1s(Config) ->
    Node = ?config(cnode, Config),
    #{os_pid := OsPid, starts := Starts} = autonomic_planner:cnode_info(),
    Self = self(),
    Loop = spawn_link(fun() -> plan_loop(Self, []) end),
    timer:sleep(100),
    T0 = erlang:monotonic_time(millisecond),
    os:cmd("kill -9 " ++ integer_to_list(OsPid)),
    Back = await_new_cnode(OsPid, T0 + 5000),
    Elapsed = Back - T0,
    %% And answering.
    {ok, #{planner := cnode}} = gen_server:call({planner, Node}, {plan, autonomic_planner:input(analysis(), opts())}, 2000),
    Answered = erlang:monotonic_time(millisecond) - T0,
    timer:sleep(100),
    Loop ! stop,
    Results = receive {results, Rs} -> Rs after 5000 -> ct:fail(no_results) end,
    Planners = [P || {ok, #{planner := P}} <- Results],
    ct:log("back after ~p ms, answering after ~p ms; ~p plans during the test: ~p",
           [Elapsed, Answered, length(Results), count_each(Planners)]),
    ?assertEqual(length(Results), length(Planners)),
    ?assert(lists:member(builtin, Planners)),
    ?assert(lists:member(cnode, Planners)),
    ?assert(Answered =< 1000),
    #{os_pid := NewPid, starts := NewStarts} = autonomic_planner:cnode_info(),
    ?assertNotEqual(OsPid, NewPid),
    ?assertEqual(Starts + 1, NewStarts),
    ?assertNot(alive(OsPid)).

owner_stop_leaves_no_cnode(_Config) ->
    {Peer, Node} = autonomic_ct:start_peer(planner_owner),
    {ok, PlannerNode} = erpc:call(Node, autonomic_planner, await_cnode, [10000]),
    #{os_pid := OsPid} = erpc:call(Node, autonomic_planner, cnode_info, []),
    ?assert(alive(OsPid)),
    ?assertEqual(pong, net_adm:ping(PlannerNode)),
    ok = peer:stop(Peer),
    ok = autonomic_ct:wait_until(fun() -> not alive(OsPid) end, 2000),
    ok = autonomic_ct:wait_until(fun() -> not registered(PlannerNode) end, 2000).

owner_kill_9_leaves_no_cnode(_Config) ->
    {_Peer, Node} = autonomic_ct:start_peer(planner_owner),
    {ok, PlannerNode} = erpc:call(Node, autonomic_planner, await_cnode, [10000]),
    #{os_pid := OsPid} = erpc:call(Node, autonomic_planner, cnode_info, []),
    OwnerPid = erpc:call(Node, os, getpid, []),
    ?assert(alive(OsPid)),
    os:cmd("kill -9 " ++ OwnerPid),
    ok = autonomic_ct:wait_until(fun() -> not alive(list_to_integer(OwnerPid)) end, 2000),
    ok = autonomic_ct:wait_until(fun() -> not alive(OsPid) end, 2000),
    ok = autonomic_ct:wait_until(fun() -> not registered(PlannerNode) end, 2000).

disabled_cnode_uses_the_builtin_planner(_Config) ->
    {Peer, Node} = autonomic_ct:start_peer(planner_off, #{apps => []}),
    try
        %% Loaded first: setting the environment of an application not yet loaded is undone by
        %% loading it.
        ok = erpc:call(Node, application, load, [autonomic]),
        ok = erpc:call(Node, application, set_env, [autonomic, planner_cnode, false]),
        {ok, _} = erpc:call(Node, application, ensure_all_started, [autonomic]),
        ?assertMatch({error, {disabled, config}}, erpc:call(Node, autonomic_planner, await_cnode, [1000])),
        {ok, Plan} = erpc:call(Node, autonomic_planner, plan, [analysis(), opts()]),
        ok = valid_plan(Plan),
        ?assertMatch(#{planner := builtin}, Plan),
        ?assertEqual(1, erpc:call(Node, autonomic_metrics, value,
                                  [autonomic_planner_fallbacks_total, #{reason => disabled}]))
    after
        peer:stop(Peer)
    end.

%%% Helpers

plan_loop(Parent, Acc) ->
    receive
        stop -> Parent ! {results, lists:reverse(Acc)}
    after 0 ->
        R = autonomic_planner:plan(analysis(), opts()),
        timer:sleep(2),
        plan_loop(Parent, [R | Acc])
    end.

await_new_cnode(OldPid, Deadline) ->
    case {autonomic_planner_cnode:ready_node(), catch autonomic_planner:cnode_info()} of
        {{ok, _}, #{os_pid := Pid}} when Pid =/= OldPid, is_integer(Pid) ->
            erlang:monotonic_time(millisecond);
        _ ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> ct:fail(cnode_not_back);
                false -> timer:sleep(5), await_new_cnode(OldPid, Deadline)
            end
    end.

count_each(L) ->
    lists:foldl(fun(X, M) -> maps:update_with(X, fun(N) -> N + 1 end, 1, M) end, #{}, L).

alive(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, Stat} ->
            %% "pid (comm) S ...": a zombie (Z) has exited and only waits to be reaped.
            [_, Rest] = binary:split(Stat, <<") ">>),
            binary:first(Rest) =/= $Z;
        {error, _} ->
            false
    end.

registered(Node) ->
    [Name, _] = string:split(atom_to_list(Node), "@"),
    {ok, Names} = erl_epmd:names(),
    lists:keymember(Name, 1, Names).

rss_kb(OsPid) ->
    {ok, Status} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status"),
    [Line] = [L || L <- binary:split(Status, <<"\n">>, [global]), binary:match(L, <<"VmRSS:">>) =/= nomatch],
    [_, Kb | _] = string:lexemes(binary_to_list(Line), " \t"),
    list_to_integer(Kb).

fallbacks() ->
    [{R, autonomic_metrics:value(autonomic_planner_fallbacks_total, #{reason => R})}
     || R <- [cnode_down, disabled, timeout, nodedown, noproc, overloaded, too_large, bad_term,
              internal_error, bad_reply, exit]].

%% PropEr 1.2 reports an exception inside a property through erlang:get_stacktrace/0, which
%% OTP 23 removed: catch it here and show it.
safely(Fun, Case) ->
    try Fun()
    catch Class:Reason:Stack ->
        ct:pal("~p:~p~n~p~nfor ~p", [Class, Reason, Stack, Case]),
        false
    end.

strip({ok, Plan}) -> {ok, maps:remove(planner, Plan)};
strip(Other) -> Other.

kind({ok, #{strategy := S}}) -> S;
kind({error, {invalid_input, D}}) -> element(1, D);
kind(Other) -> Other.

%%% Random inputs: a seed and sizes drawn by PropEr, the rest by `rand' from the seed
%%% (planner_input_model); a quarter of them corrupted in one of the ways it knows.

%% `{Valid, Input}': a valid input and the input to plan (the same, or a corruption of it).
input_gen() ->
    ?LET({Seed, NN, NS, Corrupt}, {integer(), range(1, 8), range(0, 25), frequency([{3, 0}, {1, range(1, planner_input_model:ncorruptions())}])},
         begin
             Valid = planner_input_model:random(Seed, NN, NS),
             case Corrupt of
                 0 -> {Valid, Valid};
                 K -> {Valid, planner_input_model:corrupt(K, Valid)}
             end
         end).

