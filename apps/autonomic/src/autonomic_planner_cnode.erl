%%% @doc Owner of the planner C-node (`priv/autonomic_planner', built from
%%% `native/autonomic_planner'): starts it as a port, hands it the cookie, follows its log, and
%%% starts it again when it dies.
%%%
%%% The C-node is named `planner_<this node's name>@<this node's host>'. It gets its node name,
%%% `net_ticktime' and the distribution's listen address and port range on its command line, and
%%% this node's cookie as the first line of its stdin: the cookie is never on a command line or
%%% in an environment, where other users could read it. It exits when its stdin closes, which
%%% happens when this process closes the port, stops, or when the whole node dies (even by
%%% `kill -9': the kernel closes the pipe), so no C-node outlives its owner.
%%%
%%% Readiness is published in a public ETS table, read by {@link autonomic_planner:plan/2}
%%% without a process hop: a plan asked while the C-node is starting goes straight to the
%%% built-in planner. A C-node that dies is started again at once; one that keeps dying within
%%% 5 s of its start is restarted after a doubling delay (100 ms up to 5 s) from its second
%%% such death on.
-module(autonomic_planner_cnode).
-behaviour(gen_server).

-export([start_link/0, ready_node/0, info/0, await_ready/1, executable/0]).
-export([init/1, handle_continue/2, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(TAB, autonomic_planner).
-define(READY_TIMEOUT, 10000).
-define(HEALTHY_RUN_MS, 5000).
-define(MAX_BACKOFF, 5000).
-define(LOG, #{domain => [autonomic, planner]}).

-type status() :: starting | ready | down | {disabled, term()}.

%%% API

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc The C-node's name when it is ready to answer.
-spec ready_node() -> {ok, node()} | {error, not_ready | not_running | {disabled, term()}}.
ready_node() ->
    try ets:lookup(?TAB, cnode) of
        [{cnode, Node, ready}] -> {ok, Node};
        [{cnode, _, {disabled, _} = Disabled}] -> {error, Disabled};
        _ -> {error, not_ready}
    catch
        error:badarg -> {error, not_running}
    end.

%% @doc The C-node's state: `status', `node', `os_pid' (of the running instance), `starts' (how
%% many times it was started), `executable'.
-spec info() -> #{atom() => term()}.
info() ->
    gen_server:call(?MODULE, info).

%% @doc Waits until the C-node is ready, up to `Timeout' ms.
-spec await_ready(non_neg_integer()) -> {ok, node()} | {error, term()}.
await_ready(Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    await_ready_(Deadline).

await_ready_(Deadline) ->
    case ready_node() of
        {ok, Node} -> {ok, Node};
        {error, {disabled, _}} = E -> E;
        {error, Why} ->
            case erlang:monotonic_time(millisecond) >= Deadline of
                true -> {error, Why};
                false -> timer:sleep(10), await_ready_(Deadline)
            end
    end.

%% @doc Where the C-node's executable is (`priv/autonomic_planner' of this application).
-spec executable() -> file:filename().
executable() ->
    Priv = case code:priv_dir(autonomic) of
        {error, bad_name} -> filename:join(filename:dirname(filename:dirname(code:which(?MODULE))), "priv");
        Dir -> Dir
    end,
    filename:absname(filename:join(Priv, "autonomic_planner")).

%%% gen_server

-record(st, {
    port :: port() | undefined,
    os_pid :: non_neg_integer() | undefined,
    node :: node() | undefined,
    status = down :: status(),
    starts = 0 :: non_neg_integer(),
    started_at = 0 :: integer(),
    backoff = 0 :: non_neg_integer(),
    timer :: reference() | undefined,
    partial = <<>> :: binary()
}).

%% @private
-spec init([]) -> {ok, #st{}, {continue, start}}.
init([]) ->
    process_flag(trap_exit, true),
    _ = ets:new(?TAB, [named_table, protected, set, {read_concurrency, true}]),
    ok = declare_metrics(),
    {ok, #st{}, {continue, start}}.

%% @private
-spec handle_continue(start, #st{}) -> {noreply, #st{}}.
handle_continue(start, St) ->
    {noreply, start(St)}.

%% @private
-spec handle_call(term(), gen_server:from(), #st{}) -> {reply, term(), #st{}}.
handle_call(info, _From, St) ->
    {reply, #{status => St#st.status, node => St#st.node, os_pid => St#st.os_pid,
              starts => St#st.starts, executable => executable()}, St};
handle_call(_Req, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @private
-spec handle_cast(term(), #st{}) -> {noreply, #st{}}.
handle_cast(_Msg, St) ->
    {noreply, St}.

%% @private
-spec handle_info(term(), #st{}) -> {noreply, #st{}}.
handle_info({Port, {data, {Eol, Part}}}, #st{port = Port, partial = Partial} = St) ->
    case Eol of
        noeol -> {noreply, St#st{partial = <<Partial/binary, Part/binary>>}};
        eol -> {noreply, line(<<Partial/binary, Part/binary>>, St#st{partial = <<>>})}
    end;
handle_info({Port, {exit_status, Status}}, #st{port = Port} = St) ->
    {noreply, died({exit_status, Status}, St)};
handle_info({'EXIT', Port, Reason}, #st{port = Port} = St) ->
    {noreply, died({port_exit, Reason}, St)};
handle_info({'EXIT', _OldPort, _}, St) ->
    {noreply, St};
handle_info({timeout, Ref, ready}, #st{timer = Ref, port = Port} = St) when is_port(Port) ->
    logger:error("planner C-node ~p not ready after ~p ms; restarting it",
                 [St#st.node, ?READY_TIMEOUT], ?LOG),
    catch port_close(Port),
    {noreply, schedule_restart(St#st{port = undefined, os_pid = undefined, timer = undefined})};
handle_info({timeout, Ref, restart}, #st{timer = Ref} = St) ->
    {noreply, start(St#st{timer = undefined})};
handle_info(_Msg, St) ->
    {noreply, St}.

%% @private
-spec terminate(term(), #st{}) -> ok.
terminate(_Reason, #st{port = Port}) ->
    %% Closing the port closes the C-node's stdin: it exits.
    is_port(Port) andalso (catch port_close(Port)),
    ok.

%%% Internals

start(St) ->
    case application:get_env(autonomic, planner_cnode, true) of
        false -> disabled(config, St);
        true -> start_enabled(St)
    end.

start_enabled(St) ->
    Exe = executable(),
    Cookie = atom_to_list(erlang:get_cookie()),
    case node() of
        nonode@nohost ->
            %% Not distributed (yet): look again in a second.
            Ref = erlang:start_timer(1000, self(), restart),
            publish(undefined, {disabled, not_distributed}),
            St#st{status = {disabled, not_distributed}, timer = Ref};
        Owner ->
            [Name, Host] = string:split(atom_to_list(Owner), "@"),
            PlannerNode = "planner_" ++ Name ++ "@" ++ Host,
            case {filelib:is_regular(Exe), length(PlannerNode) =< 255,
                  lists:any(fun(C) -> C =:= $\n orelse C =:= $\r end, Cookie)} of
                {false, _, _} -> disabled({no_executable, Exe}, St);
                {_, false, _} -> disabled(name_too_long, St);
                {_, _, true} -> disabled(unusable_cookie, St);
                {true, true, false} -> open(Exe, list_to_atom(PlannerNode), Cookie, St)
            end
    end.

open(Exe, Node, Cookie, St) ->
    Now = erlang:monotonic_time(millisecond),
    try open_port({spawn_executable, Exe},
                  [{args, [atom_to_list(Node) | extra_args()]}, {line, 4096}, binary, exit_status,
                   use_stdio, stderr_to_stdout, hide]) of
        Port ->
            %% A C-node that exits at once closes the port under our feet: its exit status
            %% still arrives, and is handled like any other death.
            _ = (catch port_command(Port, [Cookie, $\n])),
            OsPid = case erlang:port_info(Port, os_pid) of
                {os_pid, P} -> P;
                undefined -> undefined
            end,
            Starts = St#st.starts + 1,
            autonomic_metrics:inc(autonomic_planner_cnode_starts_total, #{}),
            publish(Node, starting),
            logger:info("planner C-node ~p starting (OS pid ~p, start ~p)", [Node, OsPid, Starts], ?LOG),
            St#st{port = Port, os_pid = OsPid, node = Node, status = starting, starts = Starts,
                  started_at = Now, partial = <<>>,
                  timer = erlang:start_timer(?READY_TIMEOUT, self(), ready)}
    catch
        error:Reason ->
            %% Not executable, out of file descriptors, ...: try again later, backing off.
            logger:error("cannot start the planner C-node ~ts: ~p", [Exe, Reason], ?LOG),
            publish(Node, down),
            schedule_restart(St#st{node = Node, status = down, started_at = Now})
    end.

%% The command line: what the C-node needs to behave like this node's distribution.
extra_args() ->
    Tick = case net_kernel:get_net_ticktime() of
        {ongoing_change_to, T} -> T;
        T when is_integer(T) -> T;
        _ -> 60
    end,
    Listen = case application:get_env(kernel, inet_dist_use_interface) of
        {ok, Ip} when is_tuple(Ip) -> ["--listen", inet:ntoa(Ip)];
        _ -> []
    end,
    Ports = case {application:get_env(kernel, inet_dist_listen_min), application:get_env(kernel, inet_dist_listen_max)} of
        {{ok, Min}, {ok, Max}} when is_integer(Min), is_integer(Max) ->
            ["--ports", integer_to_list(Min) ++ "-" ++ integer_to_list(Max)];
        {{ok, Min}, undefined} when is_integer(Min) ->
            ["--ports", integer_to_list(Min) ++ "-" ++ integer_to_list(Min)];
        _ -> []
    end,
    ["--net-ticktime", integer_to_list(Tick)] ++ Listen ++ Ports.

disabled(Why, St) ->
    logger:warning("planner C-node disabled (~p): plans come from the built-in planner", [Why], ?LOG),
    publish(undefined, {disabled, Why}),
    St#st{status = {disabled, Why}}.

publish(Node, Status) ->
    true = ets:insert(?TAB, {cnode, Node, Status}),
    ok.

line(<<"ready ", Rest/binary>>, #st{node = Node} = St) ->
    cancel(St#st.timer),
    publish(Node, ready),
    logger:info("planner C-node ~p ready (~ts)", [Node, Rest], ?LOG),
    St#st{status = ready, timer = undefined};
line(<<"log ", Rest/binary>>, St) ->
    {Level, Text} = case binary:split(Rest, <<" ">>) of
        [L, T] -> {level(L), T};
        [T] -> {info, T}
    end,
    logger:log(Level, "planner C-node: ~ts", [Text], ?LOG),
    St;
line(Other, St) ->
    %% Anything else on its stdout or stderr (a panic message, say).
    logger:warning("planner C-node says: ~ts", [Other], ?LOG),
    St.

level(<<"error">>) -> error;
level(<<"warning">>) -> warning;
level(<<"notice">>) -> notice;
level(<<"debug">>) -> debug;
level(_) -> info.

died(Why, #st{node = Node, os_pid = OsPid} = St) ->
    cancel(St#st.timer),
    %% The dead C-node's distribution connection may not be torn down yet (its TCP close is
    %% handled asynchronously) when the next one, under the same name, says it is ready: a call
    %% then goes over the stale connection and fails with nodedown. Drop it now.
    _ = is_atom(Node) andalso Node =/= undefined andalso erlang:disconnect_node(Node),
    publish(Node, down),
    autonomic_metrics:inc(autonomic_planner_cnode_exits_total, #{}),
    logger:warning("planner C-node ~p (OS pid ~p) exited: ~p; starting it again", [Node, OsPid, Why], ?LOG),
    schedule_restart(St#st{port = undefined, os_pid = undefined, status = down, timer = undefined}).

%% A C-node that ran for a while is started again at once; one that dies within
%% ?HEALTHY_RUN_MS of its start is too, the first time, then after 100 ms, 200 ms, ... 5 s.
schedule_restart(#st{backoff = Backoff} = St) ->
    Ran = erlang:monotonic_time(millisecond) - St#st.started_at,
    {Delay, Next} = case Ran >= ?HEALTHY_RUN_MS of
        true -> {0, 100};
        false -> {Backoff, min(?MAX_BACKOFF, max(100, Backoff * 2))}
    end,
    case Delay of
        0 -> start(St#st{backoff = Next});
        _ -> St#st{backoff = Next, timer = erlang:start_timer(Delay, self(), restart)}
    end.

cancel(undefined) -> ok;
cancel(Ref) -> _ = erlang:cancel_timer(Ref), ok.

declare_metrics() ->
    ok = autonomic_metrics:declare(autonomic_planner_cnode_starts_total, counter,
                                   "Times the planner C-node was started."),
    ok = autonomic_metrics:declare(autonomic_planner_cnode_exits_total, counter,
                                   "Times the planner C-node exited unasked."),
    ok = autonomic_metrics:declare(autonomic_planner_plans_total, counter,
                                   "Plans made, by planner (cnode or builtin)."),
    ok = autonomic_metrics:declare(autonomic_planner_fallbacks_total, counter,
                                   "Plans the built-in planner made because the C-node could not, by reason."),
    autonomic_metrics:register_collector(planner, fun() ->
        Up = case ready_node() of {ok, _} -> 1; _ -> 0 end,
        [{autonomic_planner_cnode_up, gauge, "Whether the planner C-node is ready (1) or not (0).", [{#{}, Up}]}]
    end).
