%%% @doc The chaos orchestrator: injects real faults into the cluster of {@link chaos_cluster} on
%%% a schedule, follows each one (injected, detected, recovered, healed) and reports.
%%%
%%% Schedule (from the policy's `chaos' section, each key overridable in the options):
%%% `interval_ms' between injections, `duration_ms' of injecting, `max_concurrent' faults not yet
%%% finished, `pause_on_alert' (no new fault while an SLO alert fires or a loop operation is in
%%% progress; one paused for human review, or an escalation, does not count), `safe_mode' ({@link chaos_schedule}), `weights' per scenario, `seed' (the same seed
%%% makes the same choices), `require_approval' (each experiment waits for {@link approve/1}).
%%%
%%% A fault's timeline: injected; detected at the first event that {@link chaos_scenarios:detects/2}
%%% (from any node: a forwarder on each sends this process its node's events); recovered at the
%%% start of the first recovery check, after detection, that passes
%%% ({@link chaos_scenarios:recovered/2}); healed when chaos has undone it (`hold_ms' after
%%% injection). A fault not detected and recovered within its failure mode's `recovery_ms' (the
%%% policy) counts as a failed recovery. It is finished once it is recovered or failed, and
%%% healed. Every finished fault is reported to the SLO tracker, when it runs.
-module(chaos_orchestrator).
-behaviour(gen_server).

-export([start_link/1, stop/0, status/0, faults/0, report/0, approve/1, reject/1, pending/0, failure_type/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(LOG, #{domain => [autonomic, chaos]}).
-define(TICK_MS, 100).

%% @doc Starts the orchestrator; injecting starts after `start_after_ms' (default 0).
-spec start_link(map()) -> {ok, pid()} | {error, term()}.
start_link(Opts) when is_map(Opts) ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, Opts, []).

%% @doc Stops it (faults in progress are healed first).
-spec stop() -> ok.
stop() ->
    gen_server:stop(?MODULE, normal, 60000).

%% @doc `#{state := running | draining | done, injected, finished, active, seed, ...}'.
-spec status() -> map().
status() ->
    gen_server:call(?MODULE, status).

%% @doc Every fault so far, finished or not, oldest first.
-spec faults() -> [map()].
faults() ->
    gen_server:call(?MODULE, faults).

%% @doc The chaos report ({@link chaos_report:build/2}) of the faults so far.
-spec report() -> map().
report() ->
    Faults = faults(),
    Slo = try slo_tracker:summary() catch exit:_ -> #{} end,
    #{seed := Seed, waits := Waits} = status(),
    chaos_report:build(Faults, Slo#{seed => Seed, waits => Waits}).

%% @doc Experiments awaiting approval (`require_approval').
-spec pending() -> [map()].
pending() ->
    gen_server:call(?MODULE, pending).

%% @doc Approves a pending experiment: it is injected now.
-spec approve(integer()) -> ok | {error, not_found}.
approve(Id) ->
    gen_server:call(?MODULE, {approve, Id}, 30000).

%% @doc Rejects a pending experiment: it never runs.
-spec reject(integer()) -> ok | {error, not_found}.
reject(Id) ->
    gen_server:call(?MODULE, {reject, Id}).

%% @doc The policy's failure type of a scenario (whose `recovery_ms' bounds its recovery).
-spec failure_type(atom()) -> atom().
failure_type(node_kill) -> node_down;
failure_type(process_kill) -> process_crash;
failure_type(network_partition) -> network_partition;
failure_type(backend_latency) -> backend_down;
failure_type(backend_error) -> backend_down;
failure_type(memory_pressure) -> memory_leak;
failure_type(cpu_saturation) -> cpu_saturation.

%%% gen_server

%% @doc Reads the schedule (policy, then options).
-spec init(map()) -> {ok, map()}.
init(Opts) ->
    Policy = maps:merge(autonomic_policy:get([chaos], #{}), maps:with(schedule_keys(), Opts)),
    {Seed, R} = chaos_schedule:new(maps:get(seed, Policy, random)),
    Now = now_ms(),
    Start = Now + maps:get(start_after_ms, Opts, 0),
    Duration = maps:get(duration_ms, Policy),
    self() ! tick,
    logger:notice("chaos: seed ~p, one fault every ~p ms for ~p ms", [Seed, maps:get(interval_ms, Policy), Duration], ?LOG),
    {ok, #{policy => Policy, seed => Seed, rand => R, next_id => 1, next_at => Start,
           until => case Duration of infinity -> infinity; D -> Start + D end,
           faults => #{}, forwarders => #{}, pending => [], waits => #{}, state => running,
           failure_modes => autonomic_policy:get([failure_modes], #{})}}.

schedule_keys() ->
    [interval_ms, duration_ms, max_concurrent, pause_on_alert, safe_mode, require_approval, seed, weights].

%% @doc Status, faults, approvals.
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call(status, _From, #{faults := Fs, state := S, seed := Seed, pending := P, waits := W} = St) ->
    Active = [F || F <- maps:values(Fs), not finished(F)],
    {reply, #{state => S, seed => Seed, injected => maps:size(Fs), active => length(Active),
              finished => maps:size(Fs) - length(Active), pending => length(P), waits => W,
              recovered => length([F || #{outcome := recovered} = F <- maps:values(Fs)]),
              failed => length([F || #{outcome := failed} = F <- maps:values(Fs)])}, St};
handle_call(faults, _From, #{faults := Fs} = St) ->
    {reply, [public(F) || {_, F} <- lists:sort(maps:to_list(Fs))], St};
handle_call(pending, _From, #{pending := P} = St) ->
    {reply, P, St};
handle_call({approve, Id}, _From, #{pending := P} = St) ->
    case lists:keytake(Id, 1, [{I, E} || #{id := I} = E <- P]) of
        {value, {Id, #{scenario := S, victim := V}}, _} ->
            St1 = St#{pending := [E || #{id := I} = E <- P, I =/= Id]},
            {reply, ok, inject(S, V, Id, St1)};
        false ->
            {reply, {error, not_found}, St}
    end;
handle_call({reject, Id}, _From, #{pending := P} = St) ->
    case [E || #{id := I} = E <- P, I =:= Id] of
        [] -> {reply, {error, not_found}, St};
        _ -> {reply, ok, St#{pending := [E || #{id := I} = E <- P, I =/= Id]}}
    end;
handle_call(_, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @doc No casts.
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_, St) ->
    {noreply, St}.

%% @doc The schedule's tick, events, checks and heals.
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(tick, St) ->
    St1 = forwarders(St),
    St2 = follow(St1),
    St3 = schedule(St2),
    _ = erlang:send_after(?TICK_MS, self(), tick),
    {noreply, St3};
handle_info({chaos_event, E}, #{faults := Fs} = St) ->
    At = maps:get(at, E, now_ms()),
    Fs1 = maps:map(fun(_, F) -> on_event(F, E, At) end, Fs),
    %% A fault just detected is checked at once, not at the next tick.
    {noreply, follow(St#{faults := Fs1})};
handle_info({checked, Id, StartedAt, true}, #{faults := Fs} = St) ->
    {noreply, St#{faults := update(Id, fun(F) -> recover(F, StartedAt) end, Fs)}};
handle_info({checked, Id, _StartedAt, _}, #{faults := Fs} = St) ->
    {noreply, St#{faults := update(Id, fun(F) -> F#{checking := false} end, Fs)}};
handle_info({healed, Id, Result}, #{faults := Fs} = St) ->
    At = now_ms(),
    {noreply, St#{faults := update(Id, fun(F) -> step(F#{healed_at := At, heal_result => Result}, healed, At) end, Fs)}};
handle_info({'DOWN', _, process, Pid, _}, #{forwarders := W} = St) ->
    {noreply, St#{forwarders := maps:filter(fun(_, P) -> P =/= Pid end, W)}};
handle_info(_, St) ->
    {noreply, St}.

%%% Faults

update(Id, Fun, Fs) ->
    case maps:find(Id, Fs) of
        {ok, F} -> Fs#{Id := Fun(F)};
        error -> Fs
    end.

finished(#{outcome := O, healed_at := H}) -> O =/= undefined andalso H =/= undefined.

public(F) ->
    maps:without([checking, ctx], F).

step(#{timeline := T} = F, What, At) ->
    F#{timeline := T ++ [#{at => At, what => What}]}.

on_event(#{detected_at := undefined, injected_at := I} = F, #{at := At} = E, _) when At >= I ->
    case chaos_scenarios:detects(F, E) of
        true ->
            step(F#{detected_at := At, detected_by => #{type => maps:get(type, E), node => maps:get(node, E)}},
                 {detected, maps:get(type, E), maps:get(node, E)}, At);
        false -> loop_event(F, E)
    end;
on_event(F, E, _) ->
    loop_event(F, E).

%% The loop's operations that finished while the fault was open go on its timeline.
loop_event(#{injected_at := I, healed_at := H} = F, #{type := operation_finished, at := At, detail := D})
  when At >= I, H =:= undefined ->
    step(F, {loop_operation, maps:get(strategy, D, undefined), maps:get(outcome, D, undefined),
             maps:get(recovered, D, undefined)}, At);
loop_event(F, _) ->
    F.

recover(#{recovered_at := undefined, outcome := undefined, injected_at := I, detected_at := D} = F, At) ->
    F1 = F#{recovered_at := At, outcome := recovered, checking := false,
            mttd_ms => D - I, mttr_ms => At - I},
    report_to_tracker(F1),
    step(F1, recovered, At);
recover(F, _) ->
    F#{checking := false}.

report_to_tracker(F) ->
    catch slo_tracker:record_fault(public(F)).

%% Recovery checks, deadlines.
follow(#{faults := Fs} = St) ->
    Now = now_ms(),
    Self = self(),
    Fs1 = maps:map(
            fun(Id, #{outcome := undefined, detected_at := D, checking := false, injected_at := I,
                      deadline := DL} = F) ->
                    case Now > I + DL of
                        true ->
                            F1 = F#{outcome := failed, mttd_ms => case D of undefined -> undefined; _ -> D - I end},
                            report_to_tracker(F1),
                            logger:warning("chaos: fault ~p (~p on ~p) not recovered within ~p ms", [Id, maps:get(scenario, F), maps:get(victim, F), DL], ?LOG),
                            step(F1, failed, Now);
                        false when D =/= undefined ->
                            Ctx = maps:get(ctx, F),
                            _ = spawn(fun() ->
                                              T0 = now_ms(),
                                              R = try chaos_scenarios:recovered(F, Ctx) catch _:_ -> false end,
                                              Self ! {checked, Id, T0, R}
                                      end),
                            F#{checking := true};
                        false ->
                            F
                    end;
               (_, F) -> F
            end, Fs),
    St#{faults := Fs1}.

%%% Schedule

schedule(#{state := running, until := Until} = St) ->
    case Until =/= infinity andalso now_ms() >= Until of
        true -> schedule(St#{state := draining});
        false -> maybe_inject(St)
    end;
schedule(#{state := draining, faults := Fs} = St) ->
    case lists:all(fun finished/1, maps:values(Fs)) of
        true -> logger:notice("chaos: done", ?LOG), St#{state := done};
        false -> St
    end;
schedule(St) ->
    St.

maybe_inject(#{next_at := Next} = St) ->
    case now_ms() >= Next of
        false -> St;
        true -> try_inject(St)
    end.

try_inject(#{policy := P, faults := Fs, pending := Pending, waits := W} = St) ->
    Active = length([F || F <- maps:values(Fs), not finished(F)]),
    PauseOnAlert = maps:get(pause_on_alert, P, true),
    Check = #{active => Active, max_concurrent => maps:get(max_concurrent, P, 1),
              pause_on_alert => PauseOnAlert, pending => length(Pending),
              alert => PauseOnAlert andalso alert(), operations => case PauseOnAlert of true -> operations(); false -> 0 end},
    case chaos_schedule:may_inject(Check) of
        {wait, Why} ->
            St#{waits := maps:update_with(Why, fun(C) -> C + 1 end, 1, W)};
        ok ->
            choose(St)
    end.

choose(#{policy := P, rand := R0, next_id := Id, pending := Pending} = St) ->
    Live = chaos_cluster:live(),
    Ctx = #{all => chaos_cluster:nodes(), live => Live, safe_mode => maps:get(safe_mode, P, true),
            protected => protected(Live)},
    Eligible = [S || S <- chaos_scenarios:all(), chaos_scenarios:targets(S, chaos_schedule:victims(S, Ctx)) =/= []],
    case chaos_schedule:pick(maps:get(weights, P), Eligible, R0) of
        {none, R1} ->
            St#{rand := R1};
        {S, R1} ->
            {V, R2} = chaos_schedule:uniform(chaos_scenarios:targets(S, chaos_schedule:victims(S, Ctx)), R1),
            St1 = St#{rand := R2, next_id := Id + 1, next_at := now_ms() + maps:get(interval_ms, P)},
            case maps:get(require_approval, P, false) of
                true ->
                    _ = autonomic_events:publish(chaos_approval_requested, #{id => Id, scenario => S, victim => V}),
                    St1#{pending := Pending ++ [#{id => Id, scenario => S, victim => V, requested_at => now_ms()}]};
                false ->
                    inject(S, V, Id, St1)
            end
    end.

inject(S, V, Id, #{faults := Fs, failure_modes := Modes} = St) ->
    At = now_ms(),
    Deadline = maps:get(recovery_ms, maps:get(failure_type(S), Modes, #{}), 30000),
    Base = #{id => Id, scenario => S, victim => V, injected_at => At, detected_at => undefined,
             recovered_at => undefined, healed_at => undefined, outcome => undefined, checking => false,
             deadline => Deadline, timeline => [#{at => At, what => injected}]},
    case catch chaos_scenarios:inject(S, V) of
        {ok, Ctx} ->
            logger:notice("chaos: fault ~p: ~p on ~p", [Id, S, V], ?LOG),
            F = Base#{ctx => Ctx},
            Self = self(),
            Hold = chaos_scenarios:hold_ms(S),
            _ = spawn(fun() ->
                              timer:sleep(Hold),
                              R = try chaos_scenarios:heal(F, Ctx) catch C:E -> {error, {C, E}} end,
                              Self ! {healed, Id, R}
                      end),
            St#{faults := Fs#{Id => F}};
        Error ->
            logger:warning("chaos: could not inject ~p on ~p: ~p", [S, V, Error], ?LOG),
            St
    end.

%% The coordinator's node (the loop's when it runs, else the quorum leader) is never a victim.
protected(Live) ->
    case Live of
        [] -> [];
        [N | _] ->
            Loop = try erpc:call(N, autonomic_loop, coordinator, [], 1000) of
                {ok, C} -> [C];
                _ -> []
            catch _:_ -> []
            end,
            Leader = try erpc:call(N, quorum_manager, leader, [], 1000) of
                L when is_atom(L), L =/= undefined -> [L];
                _ -> []
            catch _:_ -> []
            end,
            lists:usort(Loop ++ Leader)
    end.

alert() ->
    try slo_tracker:alert_firing()
    catch exit:_ -> false
    end.

operations() ->
    case chaos_cluster:live() of
        [] -> 0;
        [N | _] ->
            try erpc:call(N, autonomic_loop, operations, [], 500) of
                %% Neither one waiting for a human (it would hold chaos forever) nor an
                %% escalation (a notice to a human, no recovery under way) is in progress.
                Ops when is_list(Ops) -> length([Op || Op <- Ops, maps:get(state, Op, undefined) =/= paused_for_human_review,
                                                       maps:get(strategy, Op, undefined) =/= escalate]);
                _ -> 0
            catch _:_ -> 0
            end
    end.

forwarders(#{forwarders := W} = St) ->
    Live = chaos_cluster:live(),
    New = [N || N <- Live, not maps:is_key(N, W)],
    Started = lists:filtermap(fun(N) ->
                                      try erpc:call(N, chaos_forwarder, start, [self()], 2000) of
                                          Pid when is_pid(Pid) -> _ = erlang:monitor(process, Pid), {true, {N, Pid}}
                                      catch _:_ -> false
                                      end
                              end, New),
    St#{forwarders := maps:merge(W, maps:from_list(Started))}.

now_ms() ->
    erlang:system_time(millisecond).
