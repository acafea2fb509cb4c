%%% @doc What the monitor sees on one node, with real processes and real memory:
%%% <ul>
%%%   <li>a health check that starts failing gives `backend_down' within interval x
%%%       failures_before_down plus one interval, and `backend_up' when it passes again;</li>
%%%   <li>a check that hangs (or crashes) counts as failed and never blocks the monitor;</li>
%%%   <li>memory pressure (a process allocating until over a threshold) gives
%%%       `resource_exhausted' for memory and an OTP alarm, both cleared when the memory is freed;</li>
%%%   <li>steady growth of a mailbox and of a process's memory gives `resource_trend' with a
%%%       projected time to exhaustion, before any threshold;</li>
%%%   <li>ingest: every invalid field is rejected with its reason and counted, duplicates within
%%%       the window are dropped, valid signals change the governor;</li>
%%%   <li>the API: subscribe/unsubscribe of another process, report_failure.</li>
%%% </ul>
-module(mape_k_node_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([failing_check_gives_backend_down_in_time/1, hanging_check_does_not_block/1, crashing_check_fails/1,
         check_registration_errors/1, memory_pressure_raises_and_clears/1, growth_raises_resource_trend/1,
         ingest_rejects_every_invalid_field/1, ingest_drops_duplicates/1, ingest_changes_the_governor/1,
         subscribe_pid_and_report_failure/1]).

suite() -> [{timetrap, {minutes, 3}}].

all() -> [failing_check_gives_backend_down_in_time, hanging_check_does_not_block, crashing_check_fails,
          check_registration_errors, memory_pressure_raises_and_clears, growth_raises_resource_trend,
          ingest_rejects_every_invalid_field, ingest_drops_duplicates, ingest_changes_the_governor,
          subscribe_pid_and_report_failure].

init_per_suite(Config) ->
    ok = autonomic_ct:ensure_distributed(),
    ok = application:set_env(autonomic_monitor, metrics_port, 0),
    {ok, _} = application:ensure_all_started(autonomic_monitor),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(autonomic_monitor).

init_per_testcase(_Case, Config) ->
    ok = mape_k_monitor:subscribe(local),
    Config.

end_per_testcase(_Case, _Config) ->
    ok = mape_k_monitor:unsubscribe(self()),
    [ok = mape_k_monitor:unregister_check(N) || N <- maps:keys(mape_k_monitor:checks())],
    ok.

%%% Health checks

failing_check_gives_backend_down_in_time(_Config) ->
    Healthy = atomics:new(1, []),
    ok = atomics:put(Healthy, 1, 1),
    Check = fun() -> case atomics:get(Healthy, 1) of 1 -> ok; 0 -> {error, refused} end end,
    Interval = 200,
    Fbd = 3,
    ok = mape_k_monitor:register_check(db, Check, #{interval => Interval, timeout => 100, failures_before_down => Fbd}),
    ok = autonomic_ct:wait_until(fun() -> maps:get(state, maps:get(db, mape_k_monitor:checks())) =:= up end, 2000),
    %% Start failing at an arbitrary point between two runs.
    timer:sleep(Interval + 77),
    T0 = erlang:monotonic_time(millisecond),
    ok = atomics:put(Healthy, 1, 0),
    #{detail := Down} = await(backend_down, 5000),
    Took = erlang:monotonic_time(millisecond) - T0,
    ct:pal("backend_down ~b ms after the backend started failing: ~p", [Took, Down]),
    ?assertMatch(#{check := db, failures := Fbd, reason := {returned, {error, refused}}}, Down),
    ?assert(Took =< Interval * Fbd + Interval),
    ?assertMatch(#{state := down, failures := Fbd}, maps:get(db, mape_k_monitor:checks())),
    ?assertEqual(0, autonomic_metrics:value(autonomic_health_check_up, #{check => db})),
    %% Only one backend_down however long it stays down.
    timer:sleep(3 * Interval),
    ?assertEqual(nothing, receive {autonomic_event, #{type := backend_down}} = M -> M after 0 -> nothing end),
    ok = atomics:put(Healthy, 1, 1),
    #{detail := #{check := db, down_for_ms := For}} = await(backend_up, 2 * Interval + 500),
    ?assert(For >= 3 * Interval),
    ?assertEqual(1, autonomic_metrics:value(autonomic_health_check_up, #{check => db})).

hanging_check_does_not_block(_Config) ->
    %% The first run starts at registration and hangs until it is killed at its 5 s timeout. Were
    %% anything waiting for it, calls made meanwhile would take up to those 5 s.
    Hang = fun() -> timer:sleep(infinity) end,
    ok = mape_k_monitor:register_check(stuck, Hang, #{interval => 5000, timeout => 5000, failures_before_down => 1}),
    Latencies = [begin
                     {Us, _} = timer:tc(fun() ->
                                            _ = mape_k_monitor:get_metrics(),
                                            _ = mape_k_monitor:checks(),
                                            ok = mape_k_monitor:register_check(other, fun() -> ok end, #{interval => 100})
                                        end),
                     timer:sleep(50),
                     Us div 1000
                 end || _ <- lists:seq(1, 20)],
    ct:pal("monitor call latencies while a check hangs (ms): ~w", [Latencies]),
    ?assert(lists:max(Latencies) < 500),
    %% Still inside the hung run: no verdict yet, and the other check kept running.
    ?assertMatch(#{state := unknown}, maps:get(stuck, mape_k_monitor:checks())),
    ?assertMatch(#{state := up}, maps:get(other, mape_k_monitor:checks())),
    #{detail := #{check := stuck, reason := timeout, failures := 1}} = await(backend_down, 8000),
    %% The hung run was killed: no worker is left behind.
    ok = mape_k_monitor:unregister_check(stuck),
    ok = mape_k_monitor:unregister_check(other),
    {monitors, Ms} = process_info(whereis(mape_k_checks), monitors),
    ?assertEqual([], Ms).

crashing_check_fails(_Config) ->
    ok = mape_k_monitor:register_check(<<"boom">>, {erlang, error, [kaboom]}, #{interval => 100, failures_before_down => 1}),
    #{detail := #{check := <<"boom">>, reason := {crashed, error, kaboom}}} = await(backend_down, 2000),
    ok = mape_k_monitor:register_check(exits, fun() -> exit(self(), kill) end, #{interval => 100, failures_before_down => 1}),
    #{detail := #{check := exits, reason := {exited, killed}}} = await(backend_down, 2000).

check_registration_errors(_Config) ->
    ?assertEqual({error, {invalid_check_name, "db"}}, mape_k_monitor:register_check("db", fun() -> ok end, #{})),
    Arity1 = fun(_) -> ok end,
    ?assertEqual({error, {invalid_check, Arity1}}, mape_k_monitor:register_check(db, Arity1, #{})),
    ?assertEqual({error, {invalid_check, {m, f}}}, mape_k_monitor:register_check(db, {m, f}, #{})),
    ?assertEqual({error, {invalid_option, interval, 0}}, mape_k_monitor:register_check(db, fun() -> ok end, #{interval => 0})),
    ?assertEqual({error, {invalid_option, color, red}}, mape_k_monitor:register_check(db, fun() -> ok end, #{color => red})),
    ?assertEqual(#{}, mape_k_monitor:checks()).

%%% Resources

memory_pressure_raises_and_clears(_Config) ->
    %% A peer with a small memory limit: 90% of (its current use + 200 MB).
    {Peer, Node} = autonomic_ct:start_peer(mem, #{apps => []}),
    try
        Base = erpc:call(Node, erlang, memory, [total]),
        Limit = Base + 200 * 1024 * 1024,
        Env = [{metrics_port, 0}, {memory_limit, Limit}, {sample_interval_ms, 200}, {top_k, 0}],
        [ok = erpc:call(Node, application, set_env, [autonomic_monitor, K, V]) || {K, V} <- Env],
        {ok, _} = erpc:call(Node, application, ensure_all_started, [autonomic_monitor]),
        ok = mape_k_monitor:subscribe(cluster),
        ok = autonomic_ct:await_members(Node, 1),
        ?assertMatch(#{memory_limit := Limit, memory_limit_source := configured}, erpc:call(Node, mape_k_resources, sample_now, [])),
        %% Allocate 10 MB binaries until the node is over 90% of its limit.
        Hog = erpc:call(Node, erlang, spawn, [fun() -> hog([]) end]),
        Allocate = fun Loop() ->
            Hog ! {alloc, self()},
            receive allocated -> ok end,
            case erpc:call(Node, erlang, memory, [total]) >= Limit * 0.92 of
                true -> ok;
                false -> Loop()
            end
        end,
        ok = Allocate(),
        #{detail := Raised} = await_from(Node, resource_exhausted, memory, 5000),
        ct:pal("raised: ~p", [Raised]),
        ?assertMatch(#{resource := memory, threshold := 90}, Raised),
        ?assert(maps:get(value, Raised) >= 90),
        Alarms = erpc:call(Node, alarm_handler, get_alarms, []),
        ?assertMatch([{{autonomic_resource_exhausted, memory}, #{resource := memory}}],
                     [A || {{autonomic_resource_exhausted, memory}, _} = A <- Alarms]),
        ?assertEqual(1, erpc:call(Node, autonomic_metrics, value, [autonomic_resource_exhausted, #{resource => memory, mount => ""}])),
        %% Free it: the binaries go with the process.
        exit(Hog, kill),
        #{detail := Cleared} = await_from(Node, resource_recovered, memory, 5000),
        ct:pal("cleared: ~p", [Cleared]),
        ?assertMatch(#{resource := memory}, Cleared),
        ?assert(maps:get(value, Cleared) < 85),
        ?assertEqual([], [A || {{autonomic_resource_exhausted, memory}, _} = A <- erpc:call(Node, alarm_handler, get_alarms, [])])
    after
        peer:stop(Peer)
    end.

hog(Held) ->
    receive
        {alloc, From} ->
            Bin = binary:copy(<<(rand:uniform(255))>>, 10 * 1024 * 1024),
            From ! allocated,
            hog([Bin | Held])
    end.

growth_raises_resource_trend(_Config) ->
    %% Fast sampling: a window of 60 samples takes six seconds.
    {Peer, Node} = autonomic_ct:start_peer(trend, #{apps => []}),
    try
        Env = [{metrics_port, 0}, {sample_interval_ms, 100}, {trend_window, 60}, {trend_min_samples, 40},
               {top_k, 5}, {mailbox_limit, 1000000}],
        [ok = erpc:call(Node, application, set_env, [autonomic_monitor, K, V]) || {K, V} <- Env],
        {ok, _} = erpc:call(Node, application, ensure_all_started, [autonomic_monitor]),
        ok = mape_k_monitor:subscribe(cluster),
        ok = autonomic_ct:await_members(Node, 1),
        %% A consumer that fell behind: nothing reads its mailbox, a producer adds 2,000 a second.
        Sink = erpc:call(Node, erlang, spawn, [fun() -> receive never -> ok end end]),
        Producer = erpc:call(Node, erlang, spawn, [fun() -> produce(Sink) end]),
        %% A leak: a process keeping 1 MB more every 100 ms. Its memory grows as a staircase (the
        %% heap grows in steps), which a window of many steps sees as a line.
        Leak = erpc:call(Node, erlang, spawn, [fun() -> leak([]) end]),
        Trends = collect_trends(Node, [Sink, Leak], #{}, erlang:monotonic_time(millisecond) + 20000),
        exit(Producer, kill), exit(Sink, kill), exit(Leak, kill),
        ct:pal("trends: ~p", [Trends]),
        #{Sink := #{resource := mailbox, slope_per_s := MbSlope, projected_exhaustion_s := MbEta}} = Trends,
        ?assert(MbSlope > 1000 andalso MbSlope < 4000),
        ?assert(MbEta > 0 andalso MbEta < 3600),
        #{Leak := #{resource := process_memory, slope_per_s := MemSlope, projected_exhaustion_s := MemEta}} = Trends,
        ?assert(MemSlope > 2000000),
        ?assert(MemEta > 0),
        %% Memory crossed no threshold on the way: the trend came first.
        ?assertEqual([], [E || E = {autonomic_event, #{type := resource_exhausted, node := N, detail := #{resource := memory}}} <- flush(),
                               N =:= Node])
    after
        peer:stop(Peer)
    end.

produce(Sink) ->
    [Sink ! {work, I} || I <- lists:seq(1, 200)],
    timer:sleep(100),
    produce(Sink).

leak(Held) ->
    timer:sleep(100),
    leak([lists:duplicate(64000, 1) | Held]).   % about 1 MB of list cells

collect_trends(Node, Pids, Acc, Deadline) ->
    case lists:all(fun(P) -> maps:is_key(P, Acc) end, Pids) of
        true -> Acc;
        false ->
            Left = Deadline - erlang:monotonic_time(millisecond),
            receive
                {autonomic_event, #{type := resource_trend, node := Node, detail := #{pid := P} = D}} ->
                    collect_trends(Node, Pids, Acc#{P => D}, Deadline)
            after max(0, Left) ->
                ct:fail({trends_missing, Acc})
            end
    end.

%%% Ingest

ingest_rejects_every_invalid_field(_Config) ->
    Now = erlang:system_time(millisecond),
    Valid = #{tenant => <<"ingest-invalid">>, metric => cpu, value => 50, timestamp => Now},
    Cases = [
        {not_a_map, [{tenant, <<"x">>}], not_a_map},
        {missing_field, maps:remove(metric, Valid), {missing_field, metric}},
        {invalid_tenant, Valid#{tenant => <<>>}, {invalid_tenant, <<>>}},
        {invalid_tenant, Valid#{tenant => binary:copy(<<"t">>, 257)}, {invalid_tenant, binary:copy(<<"t">>, 257)}},
        {unknown_metric, Valid#{metric => temperature}, {unknown_metric, temperature}},
        {invalid_value, Valid#{value => high}, {invalid_value, high}},
        {value_out_of_bounds, Valid#{value => 250}, {value_out_of_bounds, 250, {0, 100}}},
        {invalid_timestamp, Valid#{timestamp => -5}, {invalid_timestamp, -5}},
        {timestamp_in_future, Valid#{timestamp => Now + 2 * 3600 * 1000}, {timestamp_in_future, Now + 2 * 3600 * 1000}}
    ],
    Before = maps:get(rejected, mape_k_ingest:counters()),
    lists:foreach(fun({_, Raw, Reason}) -> ?assertEqual({error, Reason}, mape_k_monitor:ingest(Raw)) end, Cases),
    After = maps:get(rejected, mape_k_ingest:counters()),
    Expected = lists:foldl(fun({L, _, _}, M) -> maps:update_with(L, fun(N) -> N + 1 end, M) end, Before, Cases),
    ?assertEqual(Expected, After),
    %% Nothing reached a governor.
    ?assertEqual({error, not_found}, autonomic:governor_info(<<"ingest-invalid">>)),
    Text = iolist_to_binary(autonomic_metrics:render()),
    ?assertMatch({_, _}, binary:match(Text, <<"autonomic_ingest_rejected_total{reason=\"timestamp_in_future\"}">>)).

ingest_drops_duplicates(_Config) ->
    Tenant = <<"ingest-dup">>,
    %% The middle of a 5 s window, so the resends below stay inside it.
    Now = erlang:system_time(millisecond),
    Ts = (Now div 5000) * 5000 + 2500 - 5000,
    Raw = #{tenant => Tenant, metric => memory, value => 80, timestamp => Ts},
    {ok, #{id := Id, state := warn}} = mape_k_monitor:ingest(Raw),
    Dups0 = maps:get(duplicates, mape_k_ingest:counters()),
    %% The same reading again, and with another timestamp in the same window: dropped.
    ?assertEqual({duplicate, Id}, mape_k_monitor:ingest(Raw)),
    ?assertEqual({duplicate, Id}, mape_k_monitor:ingest(Raw#{timestamp => Ts + 1000, value => 80.0})),
    ?assertEqual(Dups0 + 2, maps:get(duplicates, mape_k_ingest:counters())),
    {ok, #{transitions := 1}} = autonomic:governor_info(Tenant),
    %% Another value, or the next window, is another signal.
    {ok, #{state := warn}} = mape_k_monitor:ingest(Raw#{value => 81}),
    {ok, _} = mape_k_monitor:ingest(Raw#{timestamp => Ts + 5000}),
    {ok, #{transitions := 3}} = autonomic:governor_info(Tenant),
    %% Concurrent resends: exactly one wins.
    Raw2 = Raw#{value => 82},
    Self = self(),
    [spawn(fun() -> Self ! {res, mape_k_monitor:ingest(Raw2)} end) || _ <- lists:seq(1, 20)],
    Results = [receive {res, R} -> R end || _ <- lists:seq(1, 20)],
    ?assertEqual(1, length([ok || {ok, _} <- Results])),
    ?assertEqual(19, length([d || {duplicate, _} <- Results])),
    %% Once the window has passed, the id is free again.
    timer:sleep(5100),
    ?assertMatch({ok, #{id := Id}}, mape_k_monitor:ingest(Raw)).

ingest_changes_the_governor(_Config) ->
    Tenant = <<"ingest-gov">>,
    Now = erlang:system_time(millisecond),
    Sig = fun(M, V, Dt) -> mape_k_monitor:ingest(#{tenant => Tenant, metric => M, value => V, timestamp => Now + Dt}) end,
    %% 0.2 error rate is 20%: stable. 950 ms latency is 95%: intervene, throttle.
    ?assertMatch({ok, #{state := stable, action := none, normalized := 20.0}}, Sig(error_rate, 0.2, 0)),
    ?assertMatch({ok, #{state := intervene, action := {throttle, 50}, normalized := 95.0}}, Sig(<<"latency_ms">>, 950, 0)),
    {ok, #{state := intervene}} = autonomic:governor_info(Tenant),
    ?assertMatch({ok, #{state := warn}}, Sig(cpu, 10, 5000)),
    {ok, #{state := warn, transitions := 3}} = autonomic:governor_info(Tenant),
    ?assert(maps:get(accepted, mape_k_ingest:counters()) >= 3).

%%% API

subscribe_pid_and_report_failure(_Config) ->
    ok = mape_k_monitor:unsubscribe(self()),
    Self = self(),
    Sub = spawn_link(fun() -> receive {autonomic_event, E} -> Self ! {got, E} end, receive stop -> ok end end),
    ok = mape_k_monitor:subscribe(Sub),
    ok = mape_k_monitor:report_failure(#{service => payments, what => timeout}),
    receive
        {got, #{type := failure_reported, node := N, detail := #{service := payments, what := timeout, reported_by := Self}}} ->
            ?assertEqual(node(), N)
    after 2000 ->
        ct:fail(no_event)
    end,
    ok = mape_k_monitor:unsubscribe(Sub),
    ?assertEqual([], [P || P <- autonomic_events:subscribers(), P =:= Sub]),
    ok = mape_k_monitor:report_failure(plain_term),
    Sub ! stop,
    ?assertEqual({error, {bad_scope, nowhere}}, mape_k_monitor:subscribe(nowhere)).

%%% Helpers

await(Type, Timeout) ->
    Me = node(),
    receive
        {autonomic_event, #{type := Type, node := Me} = E} -> E
    after Timeout ->
        ct:fail({no_event, Type})
    end.

await_from(Node, Type, Resource, Timeout) ->
    receive
        {autonomic_event, #{type := Type, node := Node, detail := #{resource := Resource}} = E} -> E
    after Timeout ->
        ct:fail({no_event, Type, Resource, Node})
    end.

flush() ->
    receive M -> [M | flush()] after 0 -> [] end.
