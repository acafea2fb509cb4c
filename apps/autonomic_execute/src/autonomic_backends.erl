%%% @doc A small registry of backends: each has candidate targets and one active target, which a
%%% failover switches. Application code asks which target to use with {@link target/1}, an ETS
%%% read.
%%%
%%% ```
%%% 1> autonomic_backends:register(db, [{"db1", 5432}, {"db2", 5432}], {"db1", 5432}).
%%% ok
%%% 2> autonomic_backends:failover(db, {"db1", 5432}, {"db2", 5432}).
%%% {ok,{"db1",5432}}
%%% 3> autonomic_backends:target(db).
%%% {ok,{"db2",5432}}
%%% '''
%%%
%%% A failover names the target it moves away from: it is refused unless that target is the
%%% active one, so two deciders acting on the same stale view cannot undo each other. Failovers
%%% are published as the event `backend_failover' `#{backend, from, to}' and counted in
%%% `autonomic_backend_failovers_total{backend}'. Backends listed in the `backends'
%%% configuration key (`#{Name => #{targets => [T], active => T}}') are registered at start.
-module(autonomic_backends).
-behaviour(gen_server).

-compile({no_auto_import, [unregister/1]}).

-export([start_link/0]).
-export([register/3, unregister/1, target/1, failover/3, info/1, list/0, validate/2]).
-export([init/1, handle_call/3, handle_cast/2]).

-export_type([backend/0]).

-define(TAB, autonomic_backends).
-define(LOG, #{domain => [autonomic, execute]}).

-type backend() :: atom() | binary().

%%% API

%% @doc Starts the registry (from `autonomic_actuation_sup').
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Registers (or replaces) `Backend' with its candidate `Targets' (a non-empty list without
%% duplicates) and the `Active' one among them.
-spec register(backend(), [term()], term()) -> ok | {error, term()}.
register(Backend, Targets, Active) ->
    case validate(Backend, #{targets => Targets, active => Active}) of
        ok -> gen_server:call(?MODULE, {register, Backend, Targets, Active});
        {error, _} = Error -> Error
    end.

%% @doc Removes `Backend'. Idempotent.
-spec unregister(backend()) -> ok.
unregister(Backend) ->
    gen_server:call(?MODULE, {unregister, Backend}).

%% @doc The target to use for `Backend' now (an ETS read).
-spec target(backend()) -> {ok, term()} | {error, not_found}.
target(Backend) ->
    try
        {ok, ets:lookup_element(?TAB, Backend, 2)}
    catch
        error:badarg -> {error, not_found}
    end.

%% @doc Makes `To' the active target of `Backend' in place of `From'; returns the target it
%% replaced (`From').
-spec failover(backend(), term(), term()) -> {ok, term()} | {error, term()}.
failover(Backend, From, To) ->
    gen_server:call(?MODULE, {failover, Backend, From, To}).

%% @doc `#{active, targets, failovers}' of `Backend'.
-spec info(backend()) -> {ok, map()} | {error, not_found}.
info(Backend) ->
    case ets:lookup(?TAB, Backend) of
        [{_, Active, Targets, N}] -> {ok, #{active => Active, targets => Targets, failovers => N}};
        [] -> {error, not_found}
    end.

%% @doc Every backend and its active target.
-spec list() -> [{backend(), term()}].
list() ->
    lists:sort([{B, A} || {B, A, _, _} <- ets:tab2list(?TAB)]).

%% @doc Checks a backend's name and its `#{targets, active}' description.
-spec validate(term(), term()) -> ok | {error, term()}.
validate(Backend, _) when not (is_atom(Backend) orelse is_binary(Backend)) ->
    {error, {invalid_backend, Backend}};
validate(_, #{targets := Targets, active := Active} = B) when map_size(B) =:= 2 ->
    case is_list(Targets) andalso Targets =/= [] andalso length(lists:usort(Targets)) =:= length(Targets) of
        false -> {error, {invalid_targets, Targets}};
        true ->
            case lists:member(Active, Targets) of
                true -> ok;
                false -> {error, {unknown_target, Active}}
            end
    end;
validate(_, Other) ->
    {error, {invalid_backend_spec, Other}}.

%%% gen_server

%% @private
-spec init([]) -> {ok, #{}}.
init([]) ->
    %% {Backend, Active, Targets, Failovers}
    _ = ets:new(?TAB, [named_table, protected, set, {read_concurrency, true}]),
    maps:foreach(fun(B, #{targets := Ts, active := A}) -> true = ets:insert(?TAB, {B, A, Ts, 0}) end,
                 autonomic_execute_config:get(backends)),
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call({register, Backend, Targets, Active}, _From, S) ->
    true = ets:insert(?TAB, {Backend, Active, Targets, 0}),
    logger:info("backend ~p registered: ~p, active ~p", [Backend, Targets, Active], ?LOG),
    {reply, ok, S};
handle_call({unregister, Backend}, _From, S) ->
    true = ets:delete(?TAB, Backend),
    {reply, ok, S};
handle_call({failover, Backend, From, To}, _From, S) ->
    Reply = case ets:lookup(?TAB, Backend) of
        [] ->
            {error, {unknown_backend, Backend}};
        [{_, Active, _, _}] when Active =/= From ->
            {error, {not_active, From, Active}};
        [{_, _, _, _}] when To =:= From ->
            {error, {same_target, To}};
        [{_, _, Targets, N}] ->
            case lists:member(To, Targets) of
                false ->
                    {error, {unknown_target, To}};
                true ->
                    true = ets:insert(?TAB, {Backend, To, Targets, N + 1}),
                    _ = autonomic_events:publish(backend_failover, #{backend => Backend, from => From, to => To}),
                    ok = autonomic_metrics:inc(autonomic_backend_failovers_total, #{backend => Backend}),
                    logger:warning("backend ~p: failover ~p -> ~p", [Backend, From, To], ?LOG),
                    {ok, From}
            end
    end,
    {reply, Reply, S};
handle_call(_Req, _From, S) ->
    {reply, {error, unknown_call}, S}.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) ->
    {noreply, S}.
