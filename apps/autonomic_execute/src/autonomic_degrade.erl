%%% @doc Graceful degradation: a node-wide level, `normal | degraded | minimal | emergency', and
%%% features registered with the levels in which they turn off.
%%%
%%% ```
%%% 1> autonomic_degrade:register_feature(recommendations, [degraded, minimal, emergency]).
%%% ok
%%% 2> autonomic_degrade:register_feature(search, [minimal, emergency]).
%%% ok
%%% 3> autonomic_degrade:set_level(degraded).
%%% {ok,normal}
%%% 4> {autonomic:feature_enabled(recommendations), autonomic:feature_enabled(search)}.
%%% {false,true}
%%% '''
%%%
%%% The level in force is the more degraded of two: the manual level ({@link set_level/1}, what
%%% the actuator's `{degrade, Level}' sets; it stays until changed) and the automatic level,
%%% chosen every `degrade_interval_ms' (1 s) by rules over the monitor's latest resource sample
%%% ({@link autonomic_degrade_rules}): a rule that fires raises the automatic level at once;
%%% when the rules ask for less, it steps back one level at a time, each step after
%%% `degrade_calm_ms' (30 s) of samples asking for less.
%%%
%%% {@link feature_enabled/1} (also `autonomic:feature_enabled/1') is one ETS read: every
%%% feature's row is `{Feature, Enabled}' at the level in force, rewritten when the level
%%% changes (the levels each feature is off in are this process's state). A feature nobody
%%% registered is enabled. Level changes are published as the event
%%% `degradation_level_changed' `#{from, to, manual, auto, cause}' and shown by the gauge
%%% `autonomic_degrade_level' (0 normal .. 3 emergency).
-module(autonomic_degrade).
-behaviour(gen_server).

-export([start_link/0]).
-export([feature_enabled/1, register_feature/2, unregister_feature/1, features/0, level/0, set_level/1,
         manual_level/0, set_rules/1, evaluate/0, info/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-export_type([level/0, feature/0]).

-define(TAB, autonomic_degrade).
-define(LEVEL, {level}).
%% The persistent term holding the table's id (see init/1).
-define(TID, ?TAB).
-define(LOG, #{domain => [autonomic, execute]}).

-type level() :: autonomic_degrade_rules:level().
-type feature() :: atom() | binary().

-record(st, {
    features = #{} :: #{feature() => [level()]},
    manual = normal :: level(),
    auto = #{level => normal, calm_since => undefined} :: autonomic_degrade_rules:auto(),
    rules :: [autonomic_degrade_rules:rule()],
    interval :: pos_integer(),
    calm :: non_neg_integer()
}).

%%% API

%% @doc Starts the degradation server (from `autonomic_actuation_sup').
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Whether `Feature' is on at the level in force: one ETS read. `true' for a feature nobody
%% registered.
-spec feature_enabled(term()) -> boolean().
feature_enabled(Feature) ->
    %% lookup/2 rather than lookup_element/3: a missing key is a plain [] (no exception raised
    %% and caught on the path of every unregistered feature).
    try ets:lookup(persistent_term:get(?TID), Feature) of
        [{_, Enabled}] -> Enabled;
        [] -> true
    catch
        %% No table: the application is not running.
        error:badarg -> true
    end.

%% @doc Registers (or re-registers) `Feature' (an atom or a binary) as off in the levels `OffIn'
%% (a list of levels; `[]' keeps it always on).
-spec register_feature(feature(), [level()]) -> ok | {error, term()}.
register_feature(Feature, OffIn) ->
    case {is_atom(Feature) orelse is_binary(Feature), is_list(OffIn) andalso
          lists:all(fun autonomic_degrade_rules:valid_level/1, OffIn)} of
        {false, _} -> {error, {invalid_feature, Feature}};
        {true, false} -> {error, {invalid_levels, OffIn}};
        {true, true} -> gen_server:call(?MODULE, {register, Feature, lists:usort(OffIn)})
    end.

%% @doc Forgets `Feature' (it reads as enabled again). Idempotent.
-spec unregister_feature(feature()) -> ok.
unregister_feature(Feature) ->
    gen_server:call(?MODULE, {unregister, Feature}).

%% @doc Every registered feature: `{Feature, OffIn, EnabledNow}'.
-spec features() -> [{feature(), [level()], boolean()}].
features() ->
    gen_server:call(?MODULE, features).

%% @doc The level in force (an ETS read).
-spec level() -> level().
level() ->
    ets:lookup_element(?TAB, ?LEVEL, 2).

%% @doc Sets the manual level; returns the manual level it replaced.
-spec set_level(level()) -> {ok, level()} | {error, {invalid_level, term()}}.
set_level(Level) ->
    case autonomic_degrade_rules:valid_level(Level) of
        true -> gen_server:call(?MODULE, {set_level, Level});
        false -> {error, {invalid_level, Level}}
    end.

%% @doc The manual level.
-spec manual_level() -> level().
manual_level() ->
    maps:get(manual, info()).

%% @doc Replaces the automatic rules (see {@link autonomic_degrade_rules}).
-spec set_rules([autonomic_degrade_rules:rule()]) -> ok | {error, term()}.
set_rules(Rules) ->
    case autonomic_degrade_rules:validate(Rules) of
        ok -> gen_server:call(?MODULE, {set_rules, Rules});
        {error, _} = Error -> Error
    end.

%% @doc Evaluates the rules against the monitor's latest sample now (besides the periodic
%% evaluation); returns the level in force after it.
-spec evaluate() -> level().
evaluate() ->
    gen_server:call(?MODULE, evaluate, 15000).

%% @doc The level in force, the manual and automatic levels, and the rules.
-spec info() -> #{level := level(), manual := level(), auto := level(), calm_since := integer() | undefined,
                  rules := [autonomic_degrade_rules:rule()], interval_ms := pos_integer(),
                  calm_ms := non_neg_integer()}.
info() ->
    gen_server:call(?MODULE, info).

%%% gen_server

%% @private
-spec init([]) -> {ok, #st{}}.
init([]) ->
    _ = ets:new(?TAB, [named_table, protected, set | autonomic_execute_config:table_options()]),
    true = ets:insert(?TAB, {?LEVEL, normal}),
    %% Read by id: resolving a table's name costs more than the read. Put once per start of this
    %% process (replacing a persistent term makes the runtime scan every process).
    ok = persistent_term:put(?TID, ets:whereis(?TAB)),
    ok = autonomic_metrics:set(autonomic_degrade_level, #{}, 0),
    St = #st{rules = autonomic_execute_config:get(degrade_rules),
             interval = autonomic_execute_config:get(degrade_interval_ms),
             calm = autonomic_execute_config:get(degrade_calm_ms)},
    _ = erlang:send_after(St#st.interval, self(), evaluate),
    {ok, St}.

%% @private
-spec handle_call(term(), gen_server:from(), #st{}) -> {reply, term(), #st{}}.
handle_call({register, Feature, OffIn}, _From, #st{features = Fs} = St) ->
    true = ets:insert(?TAB, {Feature, not lists:member(level(), OffIn)}),
    {reply, ok, St#st{features = Fs#{Feature => OffIn}}};
handle_call({unregister, Feature}, _From, #st{features = Fs} = St) ->
    true = ets:delete(?TAB, Feature),
    {reply, ok, St#st{features = maps:remove(Feature, Fs)}};
handle_call(features, _From, #st{features = Fs} = St) ->
    {reply, lists:sort([{F, OffIn, feature_enabled(F)} || {F, OffIn} <- maps:to_list(Fs)]), St};
handle_call({set_level, Level}, _From, #st{manual = Old} = St) ->
    {reply, {ok, Old}, apply_level(St#st{manual = Level}, manual)};
handle_call({set_rules, Rules}, _From, St) ->
    {reply, ok, St#st{rules = Rules}};
handle_call(evaluate, _From, St) ->
    St1 = evaluate(St),
    {reply, level(), St1};
handle_call(info, _From, #st{manual = M, auto = #{level := A, calm_since := C}} = St) ->
    {reply, #{level => level(), manual => M, auto => A, calm_since => C, rules => St#st.rules,
              interval_ms => St#st.interval, calm_ms => St#st.calm}, St};
handle_call(_Req, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @private
-spec handle_cast(term(), #st{}) -> {noreply, #st{}}.
handle_cast(_Msg, St) ->
    {noreply, St}.

%% @private
-spec handle_info(term(), #st{}) -> {noreply, #st{}}.
handle_info(evaluate, #st{interval = I} = St) ->
    _ = erlang:send_after(I, self(), evaluate),
    {noreply, evaluate(St)};
handle_info(_Msg, St) ->
    {noreply, St}.

%%% Internal

evaluate(#st{rules = []} = St) ->
    %% No rules: the automatic level still steps back down after rules were removed.
    step(St, normal);
evaluate(#st{rules = Rules} = St) ->
    case sample() of
        {ok, Sample} -> step(St, autonomic_degrade_rules:target(Rules, Sample));
        none -> St
    end.

step(#st{auto = Auto, calm = Calm} = St, Target) ->
    Auto1 = autonomic_degrade_rules:step(Auto, Target, erlang:monotonic_time(millisecond), Calm),
    case maps:get(level, Auto1) =:= maps:get(level, Auto) of
        true -> St#st{auto = Auto1};
        false -> apply_level(St#st{auto = Auto1}, rules)
    end.

%% The monitor's latest sample; none while the monitor is not running or has no sample yet.
sample() ->
    try mape_k_resources:latest() of
        #{usage_percent := _} = S -> {ok, S};
        _ -> none
    catch
        exit:_ -> none
    end.

apply_level(#st{manual = M, auto = #{level := A}} = St, Cause) ->
    New = autonomic_degrade_rules:worse(M, A),
    case level() of
        New ->
            St;
        Old ->
            %% Features first, then the level: a reader that sees the new level sees every
            %% feature at it.
            true = ets:insert(?TAB, [{F, not lists:member(New, OffIn)} || {F, OffIn} <- maps:to_list(St#st.features)]),
            true = ets:insert(?TAB, {?LEVEL, New}),
            ok = autonomic_metrics:set(autonomic_degrade_level, #{}, autonomic_degrade_rules:rank(New)),
            _ = autonomic_events:publish(degradation_level_changed,
                                         #{from => Old, to => New, manual => M, auto => A, cause => Cause}),
            Log = case autonomic_degrade_rules:rank(New) > autonomic_degrade_rules:rank(Old) of
                true -> warning;
                false -> notice
            end,
            logger:log(Log, "degradation level ~p -> ~p (~p; manual ~p, automatic ~p)", [Old, New, Cause, M, A], ?LOG),
            St
    end.
