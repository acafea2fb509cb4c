%%% @doc The coordinator of the MAPE-K loop. Every node runs this process (locally registered
%%% `autonomic_loop_coordinator'); exactly one of them at a time is the active coordinator,
%%% registered in `global' as `autonomic_coordinator'. The others follow.
%%%
%%% == Election ==
%%% Every `election_interval_ms' (200 ms) a follower checks whether it may coordinate: it has
%%% quorum (`quorum_manager:get_quorum_status/0'), is a member, and its fence is down
%%% (`autonomic:fenced/0': a node in minority never executes). When no coordinator is
%%% registered, the quorum leader claims the name at once and any other eligible node after
%%% `takeover_after_ms' (800 ms) without one (the leader may be the node that died). A dead
%%% coordinator's name goes with its node (`global' cleans up on nodedown), so a new one runs
%%% within about a second. The coordinator steps down (unregisters, kills its operations, which
%%% the next coordinator recovers from the journal) as soon as it is no longer eligible. Name
%%% clashes after a partition heals: both are told (`global:notify_all_name/3') and step down.
%%%
%%% == Cycles ==
%%% A cycle runs on every monitor event that matters (`failure_reported', `node_down',
%%% `backend_down', `resource_exhausted', `network_partition'; 50 ms later, so a burst is one
%%% cycle) and every
%%% `loop.interval_ms' of the policy; one at a time (an event during a cycle runs another right
%%% after). Monitor, Analyze and Plan run in a process of their own ({@link autonomic_loop_cycle});
%%% each planned operation then runs in its own process ({@link autonomic_loop_operation}: Gate,
%%% Execute, Verify, Knowledge); the cycle ends when all its operations are final or paused for
%%% review. A cycle past `loop.max_cycle_ms' is aborted: its unfinished operations are killed and
%%% rolled back, and the abort is recorded (`loop.cycle'). An operation holding its locks past
%%% `loop.lock_ttl_ms' is killed and rolled back the same way.
%%%
%%% == Crash recovery ==
%%% On becoming coordinator it reads the journal from its own ledger (every operation receipt
%%% is copied to each quorum member: {@link autonomic_loop_journal}) and, for every operation
%%% without a final receipt, decides with {@link autonomic_loop_recovery}: abandon (nothing was
%%% executed), verify (then complete, or roll back), or wait for a human again.
-module(autonomic_coordinator).
-behaviour(gen_statem).

-export([start_link/0, call/1, call/2]).
-export([init/1, callback_mode/0, handle_event/4, terminate/3]).

-define(NAME, autonomic_coordinator).
-define(LOCAL, autonomic_loop_coordinator).
-define(LOG, #{domain => [autonomic, loop]}).
-define(KEEP_CYCLES, 200).
-define(MATTERS, [failure_reported, node_down, backend_down, resource_exhausted, network_partition]).

%%% API

%% @doc Starts this node's coordinator process (a follower).
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_statem:start_link({local, ?LOCAL}, ?MODULE, [], []).

%% @doc A request to the active coordinator; `{error, no_coordinator}' when there is none.
-spec call(term()) -> term().
call(Req) ->
    call(Req, 15000).

%% @doc {@link call/1} with a timeout.
-spec call(term(), timeout()) -> term().
call(Req, Timeout) ->
    case global:whereis_name(?NAME) of
        undefined -> {error, no_coordinator};
        Pid ->
            try gen_statem:call(Pid, Req, Timeout)
            catch
                exit:{noproc, _} -> {error, no_coordinator};
                exit:{{nodedown, _}, _} -> {error, no_coordinator};
                exit:{timeout, _} -> {error, timeout}
            end
    end.

%%% gen_statem

%% @private
-spec callback_mode() -> handle_event_function.
callback_mode() -> handle_event_function.

%% @private
-spec init([]) -> {ok, follower, map(), [gen_statem:action()]}.
init([]) ->
    process_flag(trap_exit, true),
    Data = #{last_seen => now_ms(), ops => #{}, workers => #{}, cycle => undefined, events => [],
             cycles => [], history => #{}, incidents => [], spent => [], seq => 0, rerun => false,
             pause_req => #{}, locked_at => #{}, done => #{}},
    {ok, follower, Data, [tick(0)]}.

%% @private
-spec handle_event(gen_statem:event_type(), term(), follower | coordinator, map()) -> gen_statem:event_handler_result(follower | coordinator).
%% Election.
handle_event({timeout, tick}, tick, follower, D) ->
    case eligible() of
        {true, Leader} ->
            case global:whereis_name(?NAME) of
                undefined ->
                    Waited = now_ms() - maps:get(last_seen, D),
                    case Leader =:= node() orelse Waited >= env(takeover_after_ms, 800) of
                        true -> claim(D);
                        false -> {keep_state_and_data, [tick()]}
                    end;
                _Pid ->
                    {keep_state, D#{last_seen := now_ms()}, [tick()]}
            end;
        false ->
            {keep_state, D#{last_seen := now_ms()}, [tick()]}
    end;
handle_event({timeout, tick}, tick, coordinator, D) ->
    case eligible() =/= false andalso global:whereis_name(?NAME) =:= self() of
        true -> {keep_state, enforce_lock_ttl(D), [tick()]};
        false -> step_down(lost_eligibility, D)
    end;
handle_event(info, {global_name_conflict, ?NAME, _Other}, coordinator, D) ->
    step_down(name_conflict, D);
handle_event(info, {global_name_conflict, ?NAME}, coordinator, D) ->
    step_down(name_conflict, D);

%% Cycles.
handle_event({timeout, cycle}, periodic, coordinator, D) ->
    start_cycle(periodic, D);
handle_event({timeout, soon}, Why, coordinator, D) ->
    start_cycle(Why, D);
handle_event(info, {autonomic_event, #{type := Type} = E}, coordinator, #{events := Es} = D) ->
    case lists:member(Type, ?MATTERS) of
        true ->
            D1 = D#{events := Es ++ [E]},
            case maps:get(cycle, D) of
                undefined -> {keep_state, D1, [{{timeout, soon}, 50, event}]};
                _ -> {keep_state, D1#{rerun := true}}
            end;
        false ->
            keep_state_and_data
    end;
handle_event(info, {cycle_planned, Id, Planned, Timings, Snapshot}, coordinator, #{cycle := #{id := Id} = C} = D) ->
    Policy = autonomic_policy:current(),
    Now = erlang:system_time(millisecond),
    _ = [publish(incident_detected, (maps:with([failure_type, target, symptoms, detected_at, root_cause, confidence], I))
                 #{incident => maps:get(id, I)}) || #{incident := I} <- Planned],
    {Ops, D1} = lists:foldl(fun(P, {Acc, DAcc}) ->
                                    {OpId, DAcc1} = new_op(P, Id, Policy, DAcc),
                                    {[OpId | Acc], DAcc1}
                            end, {[], D#{incidents := [Now || _ <- Planned] ++ prune(maps:get(incidents, D), Now - 60000)}}, Planned),
    C1 = C#{planned => true, ops => Ops, timings => Timings, services => length(maps:get(services, Snapshot, []))},
    maybe_complete_cycle(D1#{cycle := C1});
handle_event({timeout, deadline}, Id, coordinator, #{cycle := #{id := Id} = C} = D) ->
    logger:error("loop: cycle ~p passed its time limit; aborting it", [Id], ?LOG),
    Unfinished = [OpId || OpId <- maps:get(ops, C, []), running(OpId, D)],
    D1 = lists:foldl(fun(OpId, DAcc) -> abort_op(OpId, cycle_time_limit, DAcc) end, D, Unfinished),
    case maps:get(pid, C) of
        Pid when is_pid(Pid) -> exit(Pid, kill);
        _ -> ok
    end,
    complete_cycle(aborted, D1);

%% Operations.
handle_event(info, {op_state, Id, State, _Detail}, coordinator, D) ->
    {keep_state, update_op(Id, fun(Op) ->
                                       case State =:= in_progress andalso not maps:get(announced, Op, false) of
                                           true ->
                                               publish(operation_started, #{op => Id, incident => incident_id(Op),
                                                                            target => maps:get(target, Op),
                                                                            strategy => maps:get(strategy, Op)}),
                                               Op#{state := State, announced => true};
                                           false -> Op#{state := State}
                                       end
                               end, D)};
handle_event(info, {op_locked, Id, Mono}, coordinator, #{locked_at := L} = D) ->
    {keep_state, D#{locked_at := maps:put(Id, Mono, L)}};
handle_event(info, {op_paused, Id, Detail}, coordinator, D) ->
    D1 = update_op(Id, fun(Op) -> Op#{state := paused_for_human_review, review => Detail} end, D),
    case maps:find(Id, maps:get(ops, D1)) of
        {ok, Op} ->
            publish(review_requested, #{op => Id, incident => incident_id(Op), target => maps:get(target, Op),
                                        reason => maps:get(reason, Detail, undefined)});
        error -> ok
    end,
    maybe_complete_cycle(metrics(D1#{locked_at := maps:remove(Id, maps:get(locked_at, D1))}));
handle_event(info, {op_done, Id, Final, Info}, coordinator, D) ->
    maybe_complete_cycle(metrics(op_done(Id, Final, Info, D)));
handle_event(info, {'DOWN', _Ref, process, Pid, Reason}, coordinator, #{workers := W} = D) ->
    case maps:take(Pid, W) of
        {Id, W1} ->
            D1 = D#{workers := W1},
            case maps:find(Id, maps:get(ops, D1)) of
                {ok, #{state := S}} when S =/= paused_for_human_review, Reason =/= normal ->
                    %% It died before its final receipt: finish it from the journal.
                    logger:error("loop: operation ~s died in ~p: ~p", [Id, S, Reason], ?LOG),
                    {keep_state, recover_op(Id, D1)};
                _ ->
                    {keep_state, D1}
            end;
        error ->
            case maps:get(cycle, D) of
                #{pid := Pid, planned := false} when Reason =/= normal ->
                    logger:error("loop: cycle process died: ~p", [Reason], ?LOG),
                    complete_cycle(error, D);
                _ -> keep_state_and_data
            end
    end;

%% Requests.
handle_event({call, From}, Req, follower, _D) ->
    {keep_state_and_data, [{reply, From, follower_reply(Req)}]};
handle_event({call, From}, Req, coordinator, D) ->
    {Reply, D1} = request(Req, D),
    {keep_state, metrics(D1), [{reply, From, Reply}]};
handle_event(info, {'EXIT', _Pid, _Reason}, _State, _D) ->
    keep_state_and_data;
handle_event(_Type, _Msg, _State, _D) ->
    keep_state_and_data.

%% @private
-spec terminate(term(), atom(), map()) -> ok.
terminate(_Reason, coordinator, D) ->
    _ = stop_everything(D),
    _ = global:unregister_name(?NAME),
    ok;
terminate(_Reason, _State, _D) ->
    ok.

%%% Election

eligible() ->
    try quorum_manager:get_quorum_status() of
        #{have_quorum := true, members := Members, leader := Leader} ->
            case lists:member(node(), Members) andalso not autonomic:fenced() of
                true -> {true, Leader};
                false -> false
            end;
        _ -> false
    catch
        _:_ -> false
    end.

claim(D) ->
    case global:register_name(?NAME, self(), fun global:notify_all_name/3) of
        yes ->
            logger:notice("loop: this node is the coordinator", ?LOG),
            ok = autonomic_events:subscribe(cluster),
            autonomic_metrics:set(autonomic_loop_is_coordinator, #{}, 1),
            D1 = recover(D),
            Interval = loop_setting(interval_ms),
            {next_state, coordinator, metrics(D1), [tick(), {{timeout, soon}, 0, takeover}, {{timeout, cycle}, Interval, periodic}]};
        no ->
            {keep_state, D#{last_seen := now_ms()}, [tick()]}
    end.

step_down(Why, D) ->
    logger:warning("loop: stepping down as coordinator: ~p", [Why], ?LOG),
    _ = global:unregister_name(?NAME),
    D1 = stop_everything(D),
    ok = autonomic_events:unsubscribe(),
    autonomic_metrics:set(autonomic_loop_is_coordinator, #{}, 0),
    {next_state, follower, metrics(D1#{last_seen := now_ms()}),
     [tick(), {{timeout, cycle}, cancel}, {{timeout, soon}, cancel}, {{timeout, deadline}, cancel}]}.

%% Kills the cycle and the operations; the next coordinator recovers them from the journal.
stop_everything(#{workers := W, cycle := C} = D) ->
    [exit(P, kill) || P <- maps:keys(W)],
    case C of
        #{pid := Pid} when is_pid(Pid) -> exit(Pid, kill);
        _ -> ok
    end,
    D#{workers := #{}, ops := #{}, cycle := undefined, events := [], rerun := false, locked_at := #{}, pause_req := #{}}.

follower_reply(_Req) ->
    {error, not_coordinator}.

%%% Cycles

start_cycle(Why, #{cycle := undefined, seq := Seq, events := Events} = D) ->
    Id = Seq + 1,
    Coord = self(),
    Policy = autonomic_policy:current(),
    Input = #{id => Id, events => Events, active => active(D), policy => Policy, healed => healed(D)},
    {Pid, _} = spawn_monitor(fun() -> autonomic_loop_cycle:run(Coord, Input) end),
    Trigger = case Events of
        [] -> undefined;
        _ -> lists:min([At || #{at := At} <- Events])
    end,
    C = #{id => Id, pid => Pid, why => Why, started => now_ms(), started_at => erlang:system_time(millisecond),
          planned => false, ops => [], trigger_at => Trigger},
    {keep_state, D#{cycle := C, seq := Id, events := [], rerun := false},
     [{{timeout, deadline}, loop_setting(max_cycle_ms), Id}, {{timeout, cycle}, loop_setting(interval_ms), periodic}]};
start_cycle(_Why, D) ->
    {keep_state, D#{rerun := true}}.

%% Targets with an unfinished operation (paused ones included: a human decides).
active(#{ops := Ops}) ->
    [{T, F} || #{target := T, incident := #{failure_type := F}} <- maps:values(Ops)].

%% When each target was last restarted successfully: the registry's `service_down' seen before
%% then came from that restart (or was healed by it).
healed(#{history := H}) ->
    maps:from_list([{T, End} || {T, #{last_completed := End}} <- maps:to_list(H)]).

maybe_complete_cycle(#{cycle := #{planned := true, ops := Ops}} = D) ->
    case [Id || Id <- Ops, running(Id, D)] of
        [] -> complete_cycle(ok, D);
        _ -> {keep_state, D}
    end;
maybe_complete_cycle(D) ->
    {keep_state, D}.

running(Id, #{ops := Ops}) ->
    case maps:find(Id, Ops) of
        {ok, #{state := paused_for_human_review}} -> false;
        {ok, _} -> true;
        error -> false
    end.

complete_cycle(Result, #{cycle := C, cycles := Cycles} = D) ->
    Timings = maps:get(timings, C, #{}),
    OpsDone = [maps:get(Id, maps:get(done, D, #{}), undefined) || Id <- maps:get(ops, C, [])],
    Done = [I || I <- OpsDone, I =/= undefined],
    MaxT = fun(Phase) -> lists:max([0 | [maps:get(Phase, maps:get(timings, I, #{}), 0) || I <- Done]]) end,
    Total = now_ms() - maps:get(started, C),
    Recovered = Done =/= [] andalso lists:all(fun(#{recovered := R}) -> R end, Done),
    R = #{cycle => maps:get(id, C), started_at => maps:get(started_at, C), trigger => maps:get(why, C),
          result => Result,
          detection_ms => maps:get(monitor, Timings, 0),
          detection_latency_ms => case maps:get(trigger_at, C) of
                                      undefined -> 0;
                                      At -> max(0, maps:get(started_at, C) - At)
                                  end,
          analysis_ms => maps:get(analyze, Timings, 0), planning_ms => maps:get(plan, Timings, 0),
          gate_ms => MaxT(gate), execution_ms => MaxT(execute), verify_ms => MaxT(verify),
          knowledge_ms => MaxT(knowledge), total_ms => Total,
          recovered => Recovered, failures_handled => length(maps:get(ops, C, [])),
          operations => maps:get(ops, C, [])},
    _ = [autonomic_metrics:observe(autonomic_loop_phase_seconds, #{phase => P}, maps:get(K, R) / 1000)
     || {P, K} <- [{monitor, detection_ms}, {analyze, analysis_ms}, {plan, planning_ms}, {gate, gate_ms},
                   {execute, execution_ms}, {verify, verify_ms}, {knowledge, knowledge_ms}, {total, total_ms}]],
    autonomic_metrics:inc(autonomic_loop_cycles_total, #{result => Result}),
    %% Cycles that found nothing are counted, not journaled (one every interval would fill the
    %% ledger with nothing).
    _ = case maps:get(failures_handled, R) > 0 orelse Result =/= ok of
        true -> autonomic_loop_journal:write_local(<<"loop.cycle">>, R);
        false -> ok
    end,
    publish(cycle_completed, maps:with([cycle, total_ms, recovered, failures_handled, result], R)),
    D1 = D#{cycle := undefined, cycles := lists:sublist([R | Cycles], ?KEEP_CYCLES),
            done := maps:without(maps:get(ops, C, []), maps:get(done, D))},
    Next = case maps:get(rerun, D1) orelse maps:get(events, D1) =/= [] of
        true -> [{{timeout, soon}, 0, rerun}];
        false -> []
    end,
    {keep_state, D1, [{{timeout, deadline}, cancel} | Next]}.

%%% Operations

new_op(P, CycleId, Policy, D) ->
    Id = op_id(),
    Op = P#{id => Id, cycle => CycleId, state => init, started_at => erlang:system_time(millisecond)},
    {Id, spawn_op(Op, Policy, new, D)}.

spawn_op(#{id := Id} = Op, Policy, Mode, #{ops := Ops, workers := W} = D) ->
    Coord = self(),
    {Pid, _} = spawn_monitor(fun() -> autonomic_loop_operation:run(Coord, Op, Policy, Mode) end),
    D#{ops := maps:put(Id, Op#{pid => Pid}, Ops), workers := maps:put(Pid, Id, W)}.

op_id() ->
    <<A:32, B:16, C:16, E:64>> = crypto:strong_rand_bytes(16),
    iolist_to_binary(io_lib:format("op-~8.16.0b-~4.16.0b-~4.16.0b-~16.16.0b", [A, B, C, E])).

update_op(Id, Fun, #{ops := Ops} = D) ->
    case maps:find(Id, Ops) of
        {ok, Op} -> D#{ops := maps:put(Id, Fun(Op), Ops)};
        error -> D
    end.

op_done(Id, Final, Info, #{ops := Ops, history := H} = D) ->
    case maps:take(Id, Ops) of
        {Op, Ops1} ->
            Target = maps:get(target, Op),
            Incident = maps:get(incident, Op),
            Now = erlang:system_time(millisecond),
            Outcome = case maps:get(rejected, Op, false) of
                true -> rejected;
                false -> Final
            end,
            Strategy = maps:get(strategy, Info, maps:get(strategy, Op)),
            Hist0 = maps:get(Target, H, #{consecutive_failures => 0}),
            Hist = case Final of
                completed when Strategy =:= supervisor_restart ->
                    Hist0#{consecutive_failures := 0, last_end => Now, last_completed => Now};
                completed -> Hist0#{consecutive_failures := 0, last_end => Now};
                _ when Outcome =:= rejected -> Hist0;
                _ -> Hist0#{consecutive_failures := maps:get(consecutive_failures, Hist0) + 1, last_end => Now}
            end,
            Detected = maps:get(detected_at, Incident, maps:get(started_at, Op)),
            publish(operation_finished, #{op => Id, incident => maps:get(id, Incident), target => Target, strategy => Strategy,
                                          outcome => Outcome, detected_at => Detected, finished_at => Now,
                                          total_ms => Now - Detected, recovered => maps:get(recovered, Info, false)}),
            autonomic_metrics:inc(autonomic_loop_operations_total, #{strategy => Strategy, outcome => Outcome}),
            Spent = case Final of
                completed -> [{Now, Now - Detected} | maps:get(spent, D)];
                _ -> maps:get(spent, D)
            end,
            D#{ops := Ops1, history := maps:put(Target, Hist, H), spent := Spent,
               done := maps:put(Id, Info, maps:get(done, D)),
               locked_at := maps:remove(Id, maps:get(locked_at, D)),
               pause_req := maps:remove(Id, maps:get(pause_req, D))};
        error ->
            D
    end.

abort_op(Id, Why, #{ops := Ops, workers := W} = D) ->
    case maps:find(Id, Ops) of
        {ok, #{pid := Pid} = Op} when is_pid(Pid) ->
            exit(Pid, kill),
            D1 = D#{workers := maps:remove(Pid, W)},
            {Decision, Recorded} = journal_state(Id),
            Mode = case Decision of
                abandon -> {abandon, Why};
                _ -> {abort, Why, maps:get(actions, Recorded, [])}
            end,
            spawn_op(maps:merge(Op, maps:with([state], Recorded)), autonomic_policy:current(), Mode, D1);
        _ ->
            D
    end.

%% An operation process died without its final receipt: finish it as a new coordinator would.
recover_op(Id, #{ops := Ops} = D) ->
    {Decision, Recorded} = journal_state(Id),
    Op = maps:merge(maps:get(Id, Ops), maps:with([state], Recorded)),
    Mode = case Decision of
        abandon -> {abandon, operation_died};
        _ -> {recover, maps:get(actions, Recorded, [])}
    end,
    spawn_op(Op, autonomic_policy:current(), Mode, D).

journal_state(Id) ->
    Receipts = [R || {_, _, #{op := OpId}} = R <- autonomic_loop_journal:read(journal_actions()), OpId =:= Id],
    case autonomic_loop_recovery:unfinished(Receipts) of
        [{Decision, Op}] -> {Decision, Op};
        [] -> {abandon, #{}}
    end.

journal_actions() ->
    [<<"loop.action">> | [autonomic_loop_journal:operation_action(S) || S <- autonomic_loop_op:states()]].

%% Reads the journal and resumes every operation without a final receipt.
recover(D) ->
    Unfinished = autonomic_loop_recovery:unfinished(autonomic_loop_journal:read(journal_actions())),
    Policy = autonomic_policy:current(),
    lists:foldl(fun({Decision, Recorded}, DAcc) ->
                        Id = maps:get(op, Recorded),
                        Op = maps:merge(maps:with([incident, target, strategies, cycle, plan, service, spec, depends_on,
                                                   estimated_ms, disrupted, services_total, started_at, strategy], Recorded),
                                        #{id => Id, state => maps:get(state, Recorded)}),
                        logger:notice("loop: recovering operation ~s found in ~p: ~p", [Id, maps:get(state, Recorded), Decision], ?LOG),
                        _ = autonomic_loop_journal:write(<<"loop.recovery">>, #{op => Id, found_in => maps:get(state, Recorded),
                                                                                decision => Decision}),
                        case Decision of
                            review ->
                                DAcc#{ops := maps:put(Id, Op#{review => #{reason => recovered}}, maps:get(ops, DAcc))};
                            abandon ->
                                spawn_op(Op, Policy, {abandon, coordinator_lost}, DAcc);
                            verify ->
                                spawn_op(Op, Policy, {recover, maps:get(actions, Recorded, [])}, DAcc)
                        end
                end, D, Unfinished).

enforce_lock_ttl(#{locked_at := L} = D) ->
    TTL = loop_setting(lock_ttl_ms),
    Now = now_ms(),
    Expired = [Id || {Id, At} <- maps:to_list(L), Now - At > TTL, running(Id, D)],
    D1 = lists:foldl(fun(Id, DAcc) ->
                             logger:error("loop: operation ~s held its locks past ~p ms; rolling it back", [Id, TTL], ?LOG),
                             abort_op(Id, lock_ttl_expired, DAcc#{locked_at := maps:remove(Id, maps:get(locked_at, DAcc))})
                     end, D, Expired),
    metrics(D1).

%%% Requests

request(operations, #{ops := Ops} = D) ->
    {[maps:with([id, target, strategy, state, started_at], Op) || Op <- sort_ops(maps:values(Ops))], D};
request({cycles, N}, #{cycles := C} = D) ->
    {lists:reverse(lists:sublist(C, N)), D};
request(pending_reviews, #{ops := Ops} = D) ->
    {[review_view(Op) || #{state := paused_for_human_review} = Op <- sort_ops(maps:values(Ops))], D};
request({human, Decision, Id}, #{ops := Ops} = D) ->
    case maps:find(Id, Ops) of
        error -> {{error, not_found}, D};
        {ok, Op} -> human(Decision, Id, Op, D)
    end;
request({conflicts, Id}, #{ops := Ops} = D) ->
    case maps:find(Id, Ops) of
        {ok, Op} ->
            Earlier = [view_for_conflict(O) || O <- maps:values(Ops), maps:get(id, O) =/= Id,
                                               maps:get(state, O) =/= paused_for_human_review,
                                               maps:get(state, O) =/= init orelse maps:get(started_at, O) < maps:get(started_at, Op)],
            {autonomic_loop_op:conflicts(view_for_conflict(Op), Earlier), D};
        error -> {[], D}
    end;
request({pause_requested, Id}, #{pause_req := P} = D) ->
    {maps:is_key(Id, P), D};
request({gate_context, Id}, D) ->
    {gate_context(Id, D), D};
request(_Other, D) ->
    {{error, unknown_request}, D}.

human(Decision, Id, #{state := State} = Op, D) ->
    case {Decision, State} of
        {Resume, paused_for_human_review} when Resume =:= approve; Resume =:= resume ->
            {ok, _} = autonomic_loop_journal:write(<<"loop.human">>, #{op => Id, decision => Decision, by => node()}),
            {ok, spawn_op(Op, autonomic_policy:current(), approved, D#{pause_req := maps:remove(Id, maps:get(pause_req, D))})};
        {reject, paused_for_human_review} ->
            {ok, _} = autonomic_loop_journal:write(<<"loop.human">>, #{op => Id, decision => reject, by => node()}),
            D1 = update_op(Id, fun(O) -> O#{rejected => true} end, D),
            {ok, spawn_op(Op#{rejected => true}, autonomic_policy:current(), {reject, human}, D1)};
        {pause, S} when S =:= init; S =:= locked; S =:= safety_check ->
            %% Only before it acts: an operation executing or verifying finishes (or rolls back).
            {ok, _} = autonomic_loop_journal:write(<<"loop.human">>, #{op => Id, decision => pause, by => node()}),
            {ok, D#{pause_req := maps:put(Id, true, maps:get(pause_req, D))}};
        {_, S} ->
            {{error, {invalid_state, S}}, D}
    end.

gate_context(Id, #{ops := Ops, history := H, incidents := Inc, spent := Spent} = _D) ->
    Op = maps:get(Id, Ops),
    Policy = autonomic_policy:current(),
    Slo = maps:get(slo, Policy),
    Now = erlang:system_time(millisecond),
    Window = maps:get(window_ms, Slo),
    Hist = maps:get(maps:get(target, Op), H, #{}),
    #{now => Now, last_end => maps:get(last_end, Hist, undefined),
      consecutive_failures => maps:get(consecutive_failures, Hist, 0),
      incidents_last_minute => length(prune(Inc, Now - 60000)),
      budget_ms => (1 - maps:get(availability, Slo)) * Window,
      spent_ms => lists:sum([Ms || {At, Ms} <- Spent, At >= Now - Window]),
      estimated_downtime_ms => maps:get(estimated_ms, Op, 0),
      disrupted => maps:get(disrupted, Op, 0), services => maps:get(services_total, Op, 0),
      headroom => headroom(maps:get(target, Op))}.

%% Spare capacity of the node that takes the work (the target's node): the memory left under
%% the node's limit, from the monitor's latest sample; unknown when there is none. Memory, not
%% CPU: what a restart or a failover needs room for is the new processes' state, and CPU use
%% swings from one second to the next.
headroom(Target) ->
    Node = case Target of
        {node, _} -> node();
        {cluster} -> node();
        _ -> element(2, Target)
    end,
    try erpc:call(Node, mape_k_resources, latest, [], 2000) of
        #{usage_percent := #{memory := P}} when is_number(P) -> max(0.0, 1 - P / 100);
        _ -> undefined
    catch
        _:_ -> undefined
    end.

review_view(Op) ->
    maps:merge(maps:with([id, target, strategy, strategies, started_at, review], Op),
               #{incident => maps:with([id, failure_type, root_cause, confidence, symptoms, detected_at], maps:get(incident, Op))}).

view_for_conflict(Op) ->
    Node = case maps:get(target, Op) of
        {service, N, _} -> N;
        _ -> undefined
    end,
    #{id => maps:get(id, Op), service => maps:get(service, Op, undefined), node => Node,
      depends_on => maps:get(depends_on, Op, [])}.

sort_ops(Ops) ->
    lists:sort(fun(#{started_at := A}, #{started_at := B}) -> A =< B end, Ops).

%%% Helpers

metrics(#{ops := Ops, locked_at := L} = D) ->
    Values = maps:values(Ops),
    autonomic_metrics:set(autonomic_loop_operations_in_progress, #{}, length(Values)),
    autonomic_metrics:set(autonomic_loop_pending_reviews, #{}, length([1 || #{state := paused_for_human_review} <- Values])),
    Oldest = case maps:values(L) of
        [] -> 0;
        Ts -> (now_ms() - lists:min(Ts)) / 1000
    end,
    autonomic_metrics:set(autonomic_loop_lock_oldest_seconds, #{}, Oldest),
    D.

incident_id(#{incident := #{id := I}}) -> I;
incident_id(_) -> undefined.

publish(Type, Detail) ->
    _ = autonomic_events:publish(Type, Detail),
    ok.

prune(Ts, Since) -> [T || T <- Ts, T >= Since].

loop_setting(Key) ->
    maps:get(Key, maps:get(loop, autonomic_policy:current())).

tick() -> tick(env(election_interval_ms, 200)).
tick(Ms) -> {{timeout, tick}, Ms, tick}.

env(Key, Default) -> application:get_env(autonomic_loop, Key, Default).

now_ms() -> erlang:monotonic_time(millisecond).
