%%% @doc One operation, run in its own process on the coordinator's node: it takes the locks,
%%% passes the gates, executes, verifies, rolls back on a failed verification, and records the
%%% outcome in the knowledge base. Each state it enters is first a journal receipt
%%% (`loop.operation.<state>', on every reachable quorum member: {@link autonomic_loop_journal})
%%% and then a message to the coordinator, so the journal is always at least as far as the
%%% coordinator's view.
%%%
%%% Locks are `global' locks `{Key, self()}' taken in the fixed order of
%%% {@link autonomic_loop_op:lock_keys/1}; `global' releases them when this process dies (a dead
%%% holder never blocks), and the coordinator kills an operation that has held its locks longer
%%% than the policy's `lock_ttl_ms' and rolls it back (a hung holder never blocks for long).
-module(autonomic_loop_operation).

-export([run/4]).

-define(LOG, #{domain => [autonomic, loop]}).

%% @doc Runs operation `Op' for the coordinator `Coord'. `Mode': `new' (from init), `approved'
%% (a human approved or resumed it: from the locks, no gates), `{recover, Actions}' (a new
%% coordinator found it in progress: verify, else roll back `Actions'), `{abandon, Why}' (found
%% before it acted: record that nothing was done), `{abort, Why, Actions}' (the cycle ran out of
%% time or the locks' TTL expired: roll back), `{reject, Who}' (a human rejected it).
-spec run(pid(), map(), map(), new | approved | {recover, [map()]} | {abandon, term()}
          | {abort, term(), [map()]} | {reject, term()}) -> ok.
run(Coord, Op, Policy, Mode) ->
    put(coord, Coord),
    T0 = now_ms(),
    S0 = #{op => Op, policy => Policy, state => maps:get(state, Op, init), actions => [], t0 => T0,
           timings => #{gate => 0, execute => 0, verify => 0, knowledge => 0}, locks => []},
    try start(Mode, S0)
    catch
        Class:Why:Stack ->
            logger:error("loop: operation ~s crashed: ~p:~p ~p", [maps:get(id, Op), Class, Why, Stack], ?LOG),
            exit({operation_crashed, Why})
    end.

start(new, S0) ->
    S = enter(init, #{}, S0),
    #{op := #{incident := #{confidence := C}}, policy := #{loop := #{min_confidence := Min}}} = S,
    case C < Min of
        true -> pause(#{reason => {low_confidence, C, Min}}, S);
        false -> wait_conflicts(S, now_ms() + lock_ttl(S) div 2)
    end;
start(approved, S) ->
    lock(S, true);
start({recover, Actions}, S0) ->
    S = take_locks(S0#{actions := Actions}),
    Strategy = case Actions of
        [] -> hd(strategies(S));
        _ -> maps:get(strategy, lists:last(Actions), hd(strategies(S)))
    end,
    %% The recorded action is the actuator's kind; verification goes by the operation's strategy.
    verify_step(strategy_of(Strategy, S), [], S#{state := in_progress});
start({abandon, Why}, S) ->
    finish(rolled_back, #{reason => Why, undone => []}, S);
start({abort, Why, Actions}, S) ->
    undo({aborted, Why}, S#{actions := Actions});
start({reject, Who}, S) ->
    finish(failed, #{reason => {rejected, Who}}, S).

strategy_of(Kind, S) ->
    case lists:member(Kind, strategies(S)) of
        true -> Kind;
        false -> hd(strategies(S))
    end.

strategies(#{op := #{strategies := L}}) -> L.

%% Dependency-aware conflicts: wait while a service this one depends on (or that depends on it)
%% is under another operation; past the deadline, ask a human.
wait_conflicts(#{op := #{id := Id}} = S, Deadline) ->
    case call({conflicts, Id}) of
        [] -> lock(S, false);
        Others ->
            case now_ms() >= Deadline of
                true -> pause(#{reason => {dependency_conflict, Others}}, S);
                false -> timer:sleep(100), wait_conflicts(S, Deadline)
            end
    end.

lock(S0, Approved) ->
    S1 = take_locks(S0),
    S = enter(locked, #{locks => maps:get(locks, S1)}, S1),
    case check_pause(S) of
        true -> pause(#{reason => paused_by_human}, S);
        false when Approved ->
            S2 = enter(safety_check, #{gates => approved_by_human}, S),
            ladder(strategies(S2), S2);
        false ->
            safety_check(S)
    end.

take_locks(#{op := Op} = S) ->
    Keys = autonomic_loop_op:lock_keys(Op),
    [acquire(K) || K <- Keys],
    Coord = get(coord),
    Coord ! {op_locked, maps:get(id, Op), erlang:monotonic_time(millisecond)},
    S#{locks := Keys}.

%% Blocks until the lock is ours; other holders finish (or die, or are killed past the TTL).
acquire(Key) ->
    case global:set_lock({Key, self()}, [node() | nodes()], 0) of
        true -> ok;
        false -> timer:sleep(50), acquire(Key)
    end.

release(#{locks := Keys}) ->
    [global:del_lock({K, self()}, [node() | nodes()]) || K <- lists:reverse(Keys)],
    ok.

safety_check(#{op := #{id := Id}} = S0) ->
    S = case maps:get(state, S0) of
        safety_check -> S0;
        _ -> enter(safety_check, #{}, S0)
    end,
    T = now_ms(),
    Context = call({gate_context, Id}),
    Results = autonomic_loop_gates:evaluate(Context, maps:get(gates, maps:get(policy, S))),
    _ = [{ok, _} = autonomic_loop_journal:write(<<"loop.gate">>, #{op => Id, gate => G, result => R}) || {G, R} <- Results],
    S1 = add_time(gate, now_ms() - T, S),
    case autonomic_loop_gates:decision(Results) of
        pass -> ladder(strategies(S1), S1);
        {wait, Ms} ->
            %% Not holding the locks while waiting out a cooldown: an operation a human resumed
            %% (which skips the gates) may go first.
            release(S1),
            timer:sleep(min(Ms, 1000)),
            case check_pause(S1) of
                true -> pause(#{reason => paused_by_human}, S1#{locks := []});
                false -> safety_check(take_locks(S1))
            end;
        {review, Failed} -> pause(#{reason => {gates_failed, Failed}}, S1)
    end.

%% Each strategy in turn until one verifies: throttle, then shed.
ladder([], S) ->
    undo(verification_failed, S);
ladder([Strategy | Rest], #{op := #{id := Id} = Op, policy := Policy} = S0) ->
    %% A pause asked for before the operation acted stops it here, before its first action.
    Paused = maps:get(actions, S0) =:= [] andalso maps:get(state, S0) =:= safety_check andalso check_pause(S0),
    case {Paused, autonomic:fenced()} of
        {true, _} -> pause(#{reason => paused_by_human}, S0);
        %% This node lost quorum since the coordinator last looked: never act in a minority.
        {false, true} -> undo(fenced, S0);
        {false, false} ->
            S = enter(in_progress, #{strategy => Strategy}, S0),
            T = now_ms(),
            Result = autonomic_loop_act:execute(Strategy, Op, Policy),
            S1 = add_time(execute, now_ms() - T, S),
            case Result of
                {ok, Action0} ->
                    Action = Action0#{strategy => Strategy},
                    {ok, _} = autonomic_loop_journal:write(<<"loop.action">>, Action#{op => Id}),
                    verify_step(Strategy, Rest, S1#{actions := maps:get(actions, S1) ++ [Action]});
                {error, Why} ->
                    {ok, _} = autonomic_loop_journal:write(<<"loop.action">>, #{op => Id, strategy => Strategy, error => Why}),
                    logger:warning("loop: operation ~s: ~p failed: ~p", [Id, Strategy, Why], ?LOG),
                    case Rest of
                        [] -> undo({action_failed, Why}, S1);
                        _ -> ladder(Rest, S1)
                    end
            end
    end.

verify_step(Strategy, Rest, #{op := #{id := Id} = Op} = S0) ->
    S = enter(verifying, #{strategy => Strategy}, S0),
    T = now_ms(),
    Ok = autonomic_loop_act:verify(Strategy, Op, erlang:monotonic_time(millisecond) + verify_ms(S)),
    {ok, _} = autonomic_loop_journal:write(<<"loop.verify">>, #{op => Id, strategy => Strategy, recovered => Ok}),
    S1 = add_time(verify, now_ms() - T, S),
    case {Ok, Rest} of
        {true, _} -> finish(completed, #{strategy => Strategy}, S1);
        {false, []} -> undo(verification_failed, S1);
        {false, _} -> ladder(Rest, S1)
    end.

%% Rolls back what was executed and ends in rolled_back (failed when something could not be
%% undone or nothing could be: a restart that did not help).
undo(Why, #{op := #{id := Id} = Op, actions := Actions} = S) ->
    Undone = autonomic_loop_act:rollback(Actions, Op),
    _ = [{ok, _} = autonomic_loop_journal:write(<<"loop.rollback">>, #{op => Id, action => A, result => R}) || {A, R} <- Undone],
    Final = case [R || {_, {error, _} = R} <- Undone] of
        [] when Actions =:= [] -> rolled_back;
        [] -> case lists:any(fun({_, R}) -> R =/= irreversible end, Undone) of
                  true -> rolled_back;
                  false -> failed
              end;
        _ -> failed
    end,
    finish(Final, #{reason => Why, undone => Undone}, S).

finish(Final, Detail, #{op := #{id := Id, incident := Incident} = Op} = S0) ->
    S = enter(Final, Detail, S0),
    T = now_ms(),
    Recovered = Final =:= completed,
    Strategy = maps:get(strategy, Detail, case maps:get(actions, S) of
                                              [] -> hd(strategies(S));
                                              As -> maps:get(strategy, lists:last(As), hd(strategies(S)))
                                          end),
    KbStrategy = case lists:member(Strategy, autonomic_kb:strategies()) of
        true -> Strategy;
        false -> hd(strategies(S))
    end,
    Record = #{failure_type => maps:get(failure_type, Incident), root_cause => maps:get(root_cause, Incident),
               symptoms => maps:get(symptoms, Incident), strategy => KbStrategy,
               recovery_ms => max(0, erlang:system_time(millisecond) - maps:get(detected_at, Incident)),
               success => Recovered},
    Kb = case maps:get(actions, S) =:= [] andalso Final =/= completed of
        %% Nothing was tried: nothing to learn.
        true -> skipped;
        false -> autonomic_kb:record(Record)
    end,
    {ok, _} = autonomic_loop_journal:write(<<"loop.knowledge">>, #{op => Id, record => Record, result => Kb}),
    S1 = add_time(knowledge, now_ms() - T, S),
    release(S1),
    get(coord) ! {op_done, Id, Final, #{strategy => Strategy, recovered => Recovered, timings => maps:get(timings, S1),
                                         actions => maps:get(actions, S1), finished_at => erlang:system_time(millisecond)}},
    _ = Op,
    ok.

pause(Detail, #{op := #{id := Id}} = S0) ->
    S = enter(paused_for_human_review, Detail, S0),
    release(S),
    get(coord) ! {op_paused, Id, Detail},
    ok.

check_pause(#{op := #{id := Id}}) ->
    call({pause_requested, Id}).

%% Records the state (journal first, then the coordinator).
enter(To, Detail, #{op := #{id := Id} = Op, state := From} = S) ->
    ok = case From =:= To of
        true -> ok;
        false -> case autonomic_loop_op:transition(From, To) of
                     {ok, To} -> ok;
                     {error, _} = E -> error(E)
                 end
    end,
    Record = maps:merge(maps:with([incident, target, strategies, strategy, cycle, plan, service, spec, depends_on,
                                   estimated_ms, disrupted, services_total, started_at], Op),
                        #{op => Id, state => To, detail => Detail, coordinator => node()}),
    {ok, _} = autonomic_loop_journal:write(autonomic_loop_journal:operation_action(To), Record),
    get(coord) ! {op_state, Id, To, Detail},
    S#{state := To}.

call(Req) ->
    gen_statem:call(get(coord), Req, 30000).

verify_ms(#{op := #{incident := #{failure_type := Type}}, policy := Policy}) ->
    Modes = maps:get(failure_modes, Policy, #{}),
    Mode = maps:get(Type, Modes, maps:get(default, Modes, #{})),
    max(1000, min(5000, maps:get(recovery_ms, Mode, 5000) div 2)).

lock_ttl(#{policy := #{loop := #{lock_ttl_ms := T}}}) -> T.

add_time(Phase, Ms, #{timings := T} = S) ->
    S#{timings := maps:update_with(Phase, fun(V) -> V + Ms end, Ms, T)}.

now_ms() -> erlang:monotonic_time(millisecond).
