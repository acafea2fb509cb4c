%%% @doc The heartbeat process: sends a heartbeat to the heartbeat process of every connected
%%% node every `heartbeat_interval_ms' (200) and keeps one phi-accrual detector
%%% ({@link mape_k_phi}) per peer it hears from. When a peer's phi reaches the threshold it tells
%%% {@link mape_k_monitor} the peer is suspected; when a heartbeat from a suspected peer arrives,
%%% that it recovered.
%%%
%%% Why a process of its own, at high priority: arrival times are only as good as the moment
%%% the receiver looks at them. Sampling resources, gossiping the matrix or answering API calls
%%% never delays a heartbeat here. Before phi is evaluated every heartbeat already waiting in the
%%% mailbox is taken in, and an evaluation that fires more than two check intervals late (this
%%% node was itself stopped or starved, and heartbeats may still sit in the distribution's
%%% buffers) is skipped: a receiver that was paused blames no peer for its own pause.
%%%
%%% Transport: plain messages over the distribution, sent with `[noconnect, nosuspend]'. They
%%% depend on the connection being up (which `net_kernel' reports), not on its tick: a node that
%%% is stopped or too busy to run its heartbeat process (`kill -STOP', a livelock) keeps its TCP
%%% connection and the kernel's ticks alive for up to `net_ticktime', but sends no heartbeat and
%%% is suspected within a second. `nosuspend' means a congested connection drops our heartbeat
%%% rather than blocking this process; `noconnect' means a heartbeat never sets up a connection.
%%%
%%% A peer's detector normally starts with its first heartbeat. A peer that connects and never
%%% sends one (hung right after connecting) would then never be judged, so on `nodeup' a probe
%%% asks the peer whether it runs a heartbeat process: if it does, or if the question goes
%%% unanswered for `?PROBE_TIMEOUT_MS' (the peer is hung), its detector starts from the moment it
%%% connected and it is suspected like any silent peer. A peer without a monitor (a test node, a
%%% remote shell) answers that it has none and is not expected to send heartbeats.
-module(mape_k_heartbeat).
-behaviour(gen_server).

-export([start_link/0, phis/0, peers/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(HB, mape_k_hb).
-define(BYE, mape_k_hb_bye).
-define(PROBE, mape_k_hb_probe).
-define(PROBE_TIMEOUT_MS, 2000).

-record(peer, {
    det :: mape_k_phi:detector(),
    suspected_at = undefined :: integer() | undefined,
    received = 0 :: non_neg_integer()
}).

-record(st, {
    interval :: pos_integer(),
    check_interval :: pos_integer(),
    phi_opts :: mape_k_phi:opts(),
    threshold :: number(),
    seq = 0 :: non_neg_integer(),
    next_send :: integer(),
    next_check :: integer(),
    peers = #{} :: #{node() => #peer{}}
}).

%%% API

%% @doc Starts the heartbeat process (from the monitor's supervisor).
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc phi of every peer heard from, now.
-spec phis() -> #{node() => float()}.
phis() ->
    gen_server:call(?MODULE, phis, 5000).

%% @doc Every peer judged: those heard from, and those that run a heartbeat process (or did not
%% answer the probe) but have not sent one yet; its phi, whether it is suspected, the detector's
%% statistics and the number of heartbeats received.
-spec peers() -> #{node() => #{phi := float(), suspected := boolean(), received := non_neg_integer(),
                               mean_ms := float(), std_ms := float()}}.
peers() ->
    gen_server:call(?MODULE, peers, 5000).

%%% gen_server

%% @private
-spec init([]) -> {ok, #st{}}.
init([]) ->
    %% Heartbeats are tiny and rare; running them ahead of normal work keeps their timing honest
    %% on a busy node.
    _ = process_flag(priority, high),
    %% So that terminate/2 runs on shutdown and can say goodbye.
    process_flag(trap_exit, true),
    ok = net_kernel:monitor_nodes(true, [nodedown_reason]),
    Interval = mape_k_config:get(heartbeat_interval_ms),
    Threshold = mape_k_config:get(phi_threshold),
    Now = now_ms(),
    St = #st{
        interval = Interval,
        check_interval = mape_k_config:get(phi_check_interval_ms),
        phi_opts = #{window => mape_k_config:get(phi_window), min_std_ms => mape_k_config:get(phi_min_std_ms),
                     threshold => Threshold, expected_interval_ms => Interval},
        threshold = Threshold,
        next_send = Now,
        next_check = Now
    },
    %% Announce ourselves at once: peers start our detector on the first heartbeat they get.
    _ = [erlang:send({?MODULE, N}, {?HB, node(), 0}, [noconnect, nosuspend]) || N <- nodes()],
    {ok, schedule(send, schedule(check, St#st{seq = 1}))}.

%% @private
-spec handle_call(term(), gen_server:from(), #st{}) -> {reply, term(), #st{}}.
handle_call(phis, _From, St) ->
    St1 = drain(St),
    Now = now_ms(),
    {reply, maps:map(fun(_, #peer{det = D}) -> mape_k_phi:phi(D, Now) end, St1#st.peers), St1};
handle_call(peers, _From, St) ->
    St1 = drain(St),
    Now = now_ms(),
    Info = maps:map(
        fun(_, #peer{det = D, suspected_at = S, received = R}) ->
            #{mean_ms := M, std_ms := Sd} = mape_k_phi:stats(D),
            #{phi => mape_k_phi:phi(D, Now), suspected => S =/= undefined, received => R, mean_ms => M, std_ms => Sd}
        end,
        St1#st.peers),
    {reply, Info, St1};
handle_call(_Req, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @private
-spec handle_cast(term(), #st{}) -> {noreply, #st{}}.
handle_cast(_Msg, St) ->
    {noreply, St}.

%% @private
-spec handle_info(term(), #st{}) -> {noreply, #st{}}.
handle_info({?HB, From, _Seq}, St) ->
    {noreply, heartbeat(From, now_ms(), St)};
handle_info({timeout, _Ref, send}, #st{seq = Seq} = St) ->
    Msg = {?HB, node(), Seq},
    %% Ignored results: a heartbeat that cannot go now (no connection, congested) is not retried;
    %% the next one is due in one interval.
    _ = [erlang:send({?MODULE, N}, Msg, [noconnect, nosuspend]) || N <- nodes()],
    {noreply, schedule(send, St#st{seq = Seq + 1})};
handle_info({timeout, _Ref, check}, #st{next_check = Due, check_interval = I} = St) ->
    case now_ms() - Due > 2 * I of
        true ->
            %% This check fired late: this node itself was paused (overloaded, stopped, a VM
            %% stall). Heartbeats that arrived meanwhile may still sit in the distribution's
            %% buffers; judging peers now would blame them for our own pause. Judge next time.
            {noreply, schedule(check, drain(St))};
        false ->
            {noreply, schedule(check, check(drain(St)))}
    end;
handle_info({nodeup, Node, _Info}, St) ->
    %% Greet the newcomer at once rather than at the next tick.
    _ = erlang:send({?MODULE, Node}, {?HB, node(), St#st.seq}, [noconnect, nosuspend]),
    Self = self(),
    Since = now_ms(),
    _ = spawn(fun() -> Self ! {?PROBE, Node, Since, probe(Node)} end),
    {noreply, St};
handle_info({?PROBE, Node, Since, Answer}, #st{peers = Peers, phi_opts = Opts} = St)
  when Answer =:= running; Answer =:= no_answer ->
    %% The peer runs a heartbeat process (or is too hung to say): judge it from the moment it
    %% connected, unless a heartbeat already started its detector.
    case not is_map_key(Node, Peers) andalso lists:member(Node, nodes()) of
        true ->
            D = mape_k_phi:heartbeat(mape_k_phi:new(Opts), Since),
            {noreply, St#st{peers = Peers#{Node => #peer{det = D, received = 0}}}};
        false ->
            {noreply, St}
    end;
handle_info({?PROBE, _Node, _Since, _NoMonitor}, St) ->
    {noreply, St};
handle_info({nodedown, Node, _Info}, #st{peers = Peers} = St) ->
    %% The node is gone: net_kernel said so, the monitor reports it. A new connection starts a
    %% new detector with the next heartbeat.
    {noreply, St#st{peers = maps:remove(Node, Peers)}};
handle_info({?BYE, From}, #st{peers = Peers} = St) ->
    %% The peer's monitor is stopping while the node stays up: its silence is not a hang.
    case Peers of
        #{From := #peer{suspected_at = Since}} when Since =/= undefined ->
            gen_server:cast(mape_k_monitor, {detector, recovered, From,
                                             #{phi => 0.0, suspected_for_ms => now_ms() - Since}});
        _ ->
            ok
    end,
    {noreply, St#st{peers = maps:remove(From, Peers)}};
handle_info(_Other, St) ->
    {noreply, St}.

%% @private
%% A monitor stopped on purpose (application stop, release upgrade) tells its peers, which stop
%% expecting its heartbeats instead of suspecting a node that is merely without a monitor.
-spec terminate(term(), #st{}) -> ok.
terminate(_Reason, _St) ->
    _ = [erlang:send({?MODULE, N}, {?BYE, node()}, [noconnect, nosuspend]) || N <- nodes()],
    ok.

%%% Internals

%% Whether `Node' runs a heartbeat process: `running', `absent', `no_answer' (no reply within
%% ?PROBE_TIMEOUT_MS) or `failed' (the connection went away).
probe(Node) ->
    try erpc:call(Node, erlang, whereis, [?MODULE], ?PROBE_TIMEOUT_MS) of
        Pid when is_pid(Pid) -> running;
        undefined -> absent
    catch
        error:{erpc, timeout} -> no_answer;
        _:_ -> failed
    end.

%% Takes in every heartbeat already in the mailbox, so phi is never evaluated on stale data.
drain(St) ->
    receive
        {?HB, From, _Seq} -> drain(heartbeat(From, now_ms(), St))
    after 0 ->
        St
    end.

heartbeat(From, Now, #st{peers = Peers, phi_opts = Opts} = St) ->
    case Peers of
        #{From := #peer{det = D, suspected_at = undefined, received = R} = P} ->
            St#st{peers = Peers#{From := P#peer{det = mape_k_phi:heartbeat(D, Now), received = R + 1}}};
        #{From := #peer{det = D, suspected_at = Since, received = R} = P} ->
            Phi = mape_k_phi:phi(D, Now),
            gen_server:cast(mape_k_monitor, {detector, recovered, From,
                                             #{phi => Phi, suspected_for_ms => Now - Since}}),
            %% The gap that ended here was the failure itself: it is not a sample of a healthy
            %% peer's timing, so it does not enter the window.
            D1 = mape_k_phi:heartbeat(mape_k_phi:forget_last(D), Now),
            St#st{peers = Peers#{From := P#peer{det = D1, suspected_at = undefined, received = R + 1}}};
        #{} ->
            case lists:member(From, nodes()) of
                true ->
                    D = mape_k_phi:heartbeat(mape_k_phi:new(Opts), Now),
                    St#st{peers = Peers#{From => #peer{det = D, received = 1}}};
                false ->
                    %% A straggler from a node already reported down.
                    St
            end
    end.

check(#st{peers = Peers, threshold = Th} = St) ->
    Now = now_ms(),
    Peers1 = maps:map(
        fun
            (Node, #peer{det = D, suspected_at = undefined} = P) ->
                Phi = mape_k_phi:phi(D, Now),
                case Phi >= Th of
                    true ->
                        #{last := Last} = mape_k_phi:stats(D),
                        gen_server:cast(mape_k_monitor, {detector, suspected, Node,
                                                         #{phi => Phi, since_last_heartbeat_ms => Now - Last}}),
                        P#peer{suspected_at = Now};
                    false ->
                        P
                end;
            (_Node, P) ->
                P
        end,
        Peers),
    St#st{peers = Peers1}.

%% Fixed-rate timers on absolute monotonic deadlines: no drift, and a late tick is followed by
%% the next one on schedule, not one interval after the late one.
schedule(send, #st{next_send = T, interval = I} = St) ->
    Next = next_deadline(T, I),
    _ = erlang:start_timer(Next, self(), send, [{abs, true}]),
    St#st{next_send = Next};
schedule(check, #st{next_check = T, check_interval = I} = St) ->
    Next = next_deadline(T, I),
    _ = erlang:start_timer(Next, self(), check, [{abs, true}]),
    St#st{next_check = Next}.

next_deadline(T, I) ->
    Now = now_ms(),
    case T + I > Now of
        true -> T + I;
        false -> Now + I - ((Now - T) rem I)
    end.

now_ms() ->
    erlang:monotonic_time(millisecond).
