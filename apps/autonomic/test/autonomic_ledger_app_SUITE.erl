%%% @doc The default `audit' ledger inside the running application, on real peer nodes: the
%%% application opens it in the node's data directory and the functions without a ledger
%%% argument use it; its owner's crash reopens it with nothing lost; a record changed on disk is
%%% reported by `verify' as an event on the cluster bus and in the metrics, also when the change
%%% happened while the node was down (the owner verifies at start); stopping the application
%%% closes it.
-module(autonomic_ledger_app_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([default_ledger_api/1, owner_crash_reopens_the_ledger/1, tamper_is_an_event_and_a_metric/1,
         tamper_while_down_is_found_at_start/1, app_stop_closes_the_ledger/1]).

suite() -> [{timetrap, {minutes, 3}}].

all() -> [default_ledger_api, owner_crash_reopens_the_ledger, tamper_is_an_event_and_a_metric,
          tamper_while_down_is_found_at_start, app_stop_closes_the_ledger].

init_per_suite(Config) ->
    ok = autonomic_ct:ensure_distributed(),
    %% This node runs the application too: its event bus is how a cluster subscriber here sees the
    %% peers' events.
    ok = application:set_env(autonomic, data_dir, filename:join(?config(priv_dir, Config), "ct_node")),
    {ok, _} = application:ensure_all_started(autonomic),
    Config.

end_per_suite(_Config) ->
    application:stop(autonomic).

init_per_testcase(TC, Config) ->
    Data = filename:join(?config(priv_dir, Config), atom_to_list(TC)),
    {Peer, Node} = autonomic_ct:start_peer(ledger_app, #{env => [{autonomic, data_dir, Data}]}),
    [{peer, Peer}, {node, Node}, {data, Data} | Config].

end_per_testcase(_TC, Config) ->
    _ = autonomic_events:unsubscribe(),
    peer:stop(?config(peer, Config)).

call(Config, M, F, A) ->
    erpc:call(?config(node, Config), M, F, A).

segment(Config) ->
    Dir = filename:join([?config(data, Config), "ledger", "audit"]),
    [Seg | _] = filelib:wildcard(filename:join(Dir, "*.seg")),
    Seg.

flip(File, Offset) ->
    {ok, Fd} = file:open(File, [read, write, raw, binary]),
    {ok, <<B>>} = file:pread(Fd, Offset, 1),
    ok = file:pwrite(Fd, Offset, <<(B bxor 1)>>),
    ok = file:close(Fd).

%% Where the result bytes of a receipt sit in the segment file.
offset_of(Config, Bin) ->
    {ok, Data} = file:read_file(segment(Config)),
    {Pos, _} = binary:match(Data, Bin),
    Pos.

%%% Tests

default_ledger_api(Config) ->
    {ok, R0} = call(Config, autonomic_ledger, append, [<<"restart_child">>, <<"db_pool: ok">>]),
    {ok, R1} = call(Config, autonomic_ledger, append, [<<"failover">>, <<"db -> replica-2">>]),
    ?assertEqual(maps:get(hash, R0), maps:get(prev_hash, R1)),
    ?assertEqual(2, call(Config, autonomic_ledger, size, [])),
    {2, Root} = call(Config, autonomic_ledger, root, []),
    ?assertEqual({ok, R1}, call(Config, autonomic_ledger, get, [maps:get(id, R1)])),
    ?assertEqual({ok, [R0, R1]}, call(Config, autonomic_ledger, tail, [5])),
    ?assertEqual({ok, [R0]}, call(Config, autonomic_ledger, by_action, [<<"restart_child">>])),
    {ok, P} = call(Config, autonomic_ledger, inclusion_proof, [0]),
    ?assertMatch(#{root := Root, size := 2}, P),
    ?assertEqual(ok, autonomic_ledger_verify:inclusion(R0, P)),
    {ok, C} = call(Config, autonomic_ledger, consistency_proof, [1]),
    ?assertEqual(ok, autonomic_ledger_verify:consistency(C)),
    ?assertEqual(ok, call(Config, autonomic_ledger, verify, [])),
    %% In the node's data directory, with the documented default policy.
    {ok, Info} = call(Config, autonomic_ledger, info, [audit]),
    ?assertMatch(#{name := audit, fsync := {group_commit, 0}, size := 2}, Info),
    Expected = filename:join([?config(data, Config), "ledger", "audit"]),
    ?assertEqual(list_to_binary(Expected), maps:get(dir, Info)),
    ?assertEqual(ok, call(Config, autonomic_ledger, verify, [call(Config, autonomic_ledger_owner, handle, [])])).

owner_crash_reopens_the_ledger(Config) ->
    Rs = [element(2, call(Config, autonomic_ledger, append, [<<"step">>, integer_to_binary(I)])) || I <- lists:seq(1, 20)],
    Owner = call(Config, erlang, whereis, [autonomic_ledger_owner]),
    true = call(Config, erlang, exit, [Owner, kill]),
    ok = autonomic_ct:wait_until(fun() ->
        case call(Config, erlang, whereis, [autonomic_ledger_owner]) of
            Pid when is_pid(Pid), Pid =/= Owner -> call(Config, autonomic_ledger, size, []) =:= 20;
            _ -> false
        end
    end, 15000),
    ?assertEqual({ok, Rs}, call(Config, autonomic_ledger, tail, [20])),
    {ok, Next} = call(Config, autonomic_ledger, append, [<<"step">>, <<"after restart">>]),
    ?assertMatch(#{seq := 20}, Next),
    ?assertEqual(maps:get(hash, lists:last(Rs)), maps:get(prev_hash, Next)),
    ?assertEqual(ok, call(Config, autonomic_ledger, verify, [])).

tamper_is_an_event_and_a_metric(Config) ->
    Node = ?config(node, Config),
    ok = autonomic_events:subscribe(cluster),
    ok = autonomic_ct:await_members(Node, 1),
    [{ok, _} = call(Config, autonomic_ledger, append, [<<"step">>, <<"result-", (integer_to_binary(I))/binary>>])
     || I <- lists:seq(0, 9)],
    flip(segment(Config), offset_of(Config, <<"result-7">>)),
    ?assertEqual({error, {chain_broken, 7}}, call(Config, autonomic_ledger, verify, [])),
    receive
        {autonomic_event, #{type := ledger_chain_broken, node := Node, detail := Detail}} ->
            ?assertMatch(#{ledger := audit, seq := 7, problem := hash}, Detail)
    after 5000 ->
        ct:fail(no_chain_broken_event)
    end,
    Text = iolist_to_binary(call(Config, autonomic_metrics, render, [])),
    ct:log("~s", [Text]),
    [?assertMatch({_, _}, binary:match(Text, Line), Line) || Line <- [
        <<"autonomic_ledger_verifications_total{ledger=\"audit\",result=\"broken\"} 1">>,
        <<"autonomic_ledger_records{ledger=\"audit\"} 10">>,
        <<"autonomic_ledger_appends_total{ledger=\"audit\"} 10">>,
        <<"autonomic_ledger_fsyncs_total{ledger=\"audit\"}">>,
        <<"autonomic_ledger_batches_total{ledger=\"audit\",size=\"1\"}">>,
        <<"# TYPE autonomic_ledger_fsync_seconds_total counter">>
    ]].

tamper_while_down_is_found_at_start(Config) ->
    Node = ?config(node, Config),
    [{ok, _} = call(Config, autonomic_ledger, append, [<<"step">>, <<"before-", (integer_to_binary(I))/binary>>])
     || I <- lists:seq(0, 4)],
    ok = call(Config, application, stop, [autonomic]),
    flip(segment(Config), offset_of(Config, <<"before-3">>)),
    {ok, _} = call(Config, application, ensure_all_started, [autonomic]),
    %% The owner's verify at start runs in the background: its verdict shows in the metrics. (Its
    %% event may go out before this node's subscription has reached the restarted peer's bus, so
    %% the event itself is checked by tamper_is_an_event_and_a_metric.)
    Broken = <<"autonomic_ledger_verifications_total{ledger=\"audit\",result=\"broken\"} 1">>,
    ok = autonomic_ct:wait_until(fun() ->
        binary:match(iolist_to_binary(erpc:call(Node, autonomic_metrics, render, [])), Broken) =/= nomatch
    end, 10000),
    %% The node keeps running and keeps appending; the damage stays reported.
    {ok, #{seq := 5}} = call(Config, autonomic_ledger, append, [<<"step">>, <<"after">>]),
    ?assertEqual({error, {chain_broken, 3}}, call(Config, autonomic_ledger, verify, [])).

app_stop_closes_the_ledger(Config) ->
    {ok, R} = call(Config, autonomic_ledger, append, [<<"a">>, <<"b">>]),
    ?assertMatch([{audit, _}], call(Config, autonomic_ledger, list, [])),
    ok = call(Config, application, stop, [autonomic]),
    ?assertEqual([], call(Config, autonomic_ledger, list, [])),
    ?assertEqual({error, {unknown_ledger, audit}}, call(Config, autonomic_ledger, append, [<<"a">>, <<"b">>])),
    %% Closed means the directory is free: this node can open it (and finds the receipt).
    Dir = filename:join([?config(data, Config), "ledger", "audit"]),
    {ok, L} = autonomic_ledger:open(ledger_app_check, #{dir => Dir}),
    ?assertEqual({ok, R}, autonomic_ledger:get(L, maps:get(id, R))),
    ok = autonomic_ledger:close(L).
