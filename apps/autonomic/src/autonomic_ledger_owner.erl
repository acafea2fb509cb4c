%%% @doc Owner of the node's default ledger, `audit', under `autonomic_sup'.
%%%
%%% It opens the ledger at start, in `ledger_dir' (application environment) or `ledger/audit'
%%% under the node's data directory, with the fsync policy `ledger_fsync' (default
%%% `{group_commit, 0}': every append still returns only after an fsync covering it, and appends
%%% that arrive while an fsync runs share the next one, so a lone append costs one fsync and
%%% thousands of concurrent ones cost a few). It then verifies the whole chain in the background
%%% (`ledger_verify_on_start', default `true'), which logs, counts and publishes
%%% `ledger_chain_broken' if a record was changed while the node was down.
%%%
%%% Everyone appends through the handle or the name `audit', not through this process: its only
%%% job is the ledger's lifetime. If it dies, the NIF closes the ledger (it monitors its owner)
%%% after answering the appends already queued, and the supervisor's restart reopens it (waiting
%%% for that close). A ledger that does not open (damage a crash cannot cause, a lock held by
%%% another OS process) stops the application's start with `{ledger_open_failed, audit, Dir,
%%% Reason}': the audit trail is not silently replaced.
-module(autonomic_ledger_owner).
-behaviour(gen_server).

-export([start_link/0, handle/0]).
-export([init/1, handle_continue/2, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(LOG, #{domain => [autonomic, ledger]}).

%% @doc Starts the owner (from `autonomic_sup').
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc The default ledger's handle.
-spec handle() -> autonomic_ledger:handle().
handle() ->
    gen_server:call(?MODULE, handle).

%% @private
-spec init([]) -> {ok, map(), {continue, verify}} | {stop, term()}.
init([]) ->
    %% Trapping exits makes the supervisor's shutdown run terminate/2, which closes the ledger
    %% after the appends in flight are durable.
    process_flag(trap_exit, true),
    ok = declare_metrics(),
    Name = autonomic_ledger:default(),
    Dir = dir(),
    Fsync = application:get_env(autonomic, ledger_fsync, autonomic_ledger:default_fsync()),
    case autonomic_ledger:open(Name, #{dir => Dir, fsync => Fsync}) of
        {ok, Ledger} ->
            {ok, #{ledger => Ledger, verifier => undefined}, {continue, verify}};
        {error, Reason} ->
            logger:critical("cannot open the audit ledger in ~ts: ~p", [Dir, Reason], ?LOG),
            {stop, {ledger_open_failed, Name, Dir, Reason}}
    end.

%% @private
-spec handle_continue(verify, map()) -> {noreply, map()}.
handle_continue(verify, #{ledger := Ledger} = State) ->
    case application:get_env(autonomic, ledger_verify_on_start, true) of
        true ->
            %% In its own process: verifying takes about a second per million receipts, and
            %% this process must stay free to shut down.
            {Pid, _} = spawn_monitor(fun() -> _ = autonomic_ledger:verify(Ledger) end),
            {noreply, State#{verifier => Pid}};
        false ->
            {noreply, State}
    end.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call(handle, _From, #{ledger := Ledger} = State) ->
    {reply, Ledger, State};
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% @private
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({'DOWN', _, process, Pid, _}, #{verifier := Pid} = State) ->
    {noreply, State#{verifier => undefined}};
handle_info(_Msg, State) ->
    {noreply, State}.

%% @private
-spec terminate(term(), map()) -> ok.
terminate(_Reason, #{ledger := Ledger}) ->
    _ = autonomic_ledger:close(Ledger),
    ok.

dir() ->
    case application:get_env(autonomic, ledger_dir) of
        {ok, Dir} when is_list(Dir); is_binary(Dir) -> Dir;
        _ -> filename:join(autonomic_config:data_dir("ledger"), atom_to_list(autonomic_ledger:default()))
    end.

declare_metrics() ->
    ok = autonomic_metrics:declare(autonomic_ledger_verifications_total, counter,
                                   "Ledger verifications, by ledger and result (ok, broken, error)."),
    autonomic_metrics:register_collector(ledger, fun autonomic_ledger:metrics/0).
