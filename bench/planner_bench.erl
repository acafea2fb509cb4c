%%% @doc Planner benchmark (`make bench', or `sh bench/run.sh planner_bench'); not a test,
%%% nothing here asserts a time.
%%%
%%% Side by side, in one run on this machine, for a small (5 nodes, 20 services) and a big
%%% (500 nodes, 5,000 services, a random dependency DAG) topology with a `node_down' analysis:
%%% <ul>
%%%   <li>the planner C-node: `autonomic_planner:plan/2' with `planner => cnode', the whole
%%%       round trip (the request encoded by the distribution, sent over TCP to the C-node,
%%%       decoded, planned on a worker thread, the plan sent back and decoded);</li>
%%%   <li>the built-in Erlang planner: `autonomic_planner:plan/2' with `planner => builtin', in
%%%       the calling process.</li>
%%% </ul>
%%% The C-node keeps the last topologies it prepared (`native/autonomic_planner/src/cache.rs'):
%%% it is measured asked again and again with the same topology (kept), and with a topology
%%% that differs from every earlier one (one node's headroom changed by a billionth: nothing
%%% kept applies, the C-node decodes, validates and indexes the whole topology every time).
%%% The variants are measured in alternation (one call of each, repeatedly), so that whatever
%%% else the machine does weighs on all alike; p50 and p99 of the per-call time, and ratios.
%%% Then the throughput with one and with four callers at once, and, for scale, what encoding
%%% the big request alone costs the caller (`term_to_binary/1').
-module(planner_bench).

-export([main/0]).

main() ->
    _ = os:cmd("epmd -daemon"),
    {ok, _} = net_kernel:start([list_to_atom("planner_bench_" ++ os:getpid()), shortnames]),
    {ok, _} = application:ensure_all_started(autonomic),
    {ok, Node} = autonomic_planner:await_cnode(10000),
    io:format("planner benchmark: C-node ~p (OS pid ~p), ~b schedulers~n~n",
              [Node, maps:get(os_pid, autonomic_planner:cnode_info()), erlang:system_info(schedulers_online)]),
    Cases = [{"5 nodes, 20 services", planner_input_model:small(), 5000},
             {"500 nodes, 5,000 services", planner_input_model:big(), 200}],
    io:format("round trip per plan (alternating calls)~n"),
    io:format("~-28s ~-22s ~12s ~12s~n", ["topology", "planner", "p50", "p99"]),
    [latency(Name, Input, N) || {Name, Input, N} <- Cases],
    io:format("~nthroughput (plans/s, 2 s per figure; the C-node with its topology kept)~n"),
    io:format("~-28s ~-9s ~12s ~12s~n", ["topology", "planner", "1 caller", "4 callers"]),
    [throughput(Name, Input) || {Name, Input, _} <- Cases],
    Big = planner_input_model:big(),
    {Enc, Bin} = timer:tc(fun() -> term_to_binary(Big) end),
    io:format("~nthe big request is ~b bytes; term_to_binary/1 of it takes ~b us in the caller~n",
              [byte_size(Bin), Enc]),
    ok.

split(#{analysis := A} = Input) ->
    {A, maps:remove(analysis, Input)}.

call(Input, Planner) ->
    {A, Opts} = split(Input),
    {ok, Plan} = autonomic_planner:plan(A, Opts#{planner => Planner, timeout => 60000}),
    Plan.

latency(Name, Input, N) ->
    %% Same plan from both (the built-in planner is the C-node's model in Erlang).
    C = call(Input, cnode),
    B = call(Input, builtin),
    true = maps:remove(planner, C) =:= maps:remove(planner, B),
    Fresh = [fresh(Input, I) || I <- lists:seq(1, N + 50)],
    _ = [{call(Input, cnode), call(F, cnode), call(F, builtin)} || F <- lists:sublist(Fresh, 50)],
    Times = [{time(fun() -> call(Input, cnode) end), time(fun() -> call(F, cnode) end),
              time(fun() -> call(F, builtin) end)}
             || F <- lists:nthtail(50, Fresh)],
    {{K50, K99}, {F50, F99}, {B50, B99}} = {percentiles([T || {T, _, _} <- Times]),
                                            percentiles([T || {_, T, _} <- Times]),
                                            percentiles([T || {_, _, T} <- Times])},
    Row = fun(Col1, Col2, A, Z) -> io:format("~-28s ~-22s ~12s ~12s~n", [Col1, Col2, A, Z]) end,
    Row(Name, "cnode, topology kept", us(K50), us(K99)),
    Row("", "cnode, new topology", us(F50), us(F99)),
    Row("", "builtin", us(B50), us(B99)),
    Row("", "builtin / cnode kept", ratio(B50, K50), ratio(B99, K99)),
    Row("", "builtin / cnode new", ratio(B50, F50), ratio(B99, F99)).

%% The input with its first node's headroom moved by I billionths: a topology never seen.
fresh(#{topology := #{nodes := [N | Ns]} = T} = Input, I) ->
    Input#{topology := T#{nodes := [N#{headroom => maps:get(headroom, N, 0.5) - I * 1.0e-9} | Ns]}}.

throughput(Name, Input) ->
    [begin
         One = rate(Input, Planner, 1),
         Four = rate(Input, Planner, 4),
         io:format("~-28s ~-9s ~12s ~12s~n",
                   [case Planner of cnode -> Name; builtin -> "" end, Planner,
                    integer_to_list(round(One)), integer_to_list(round(Four))])
     end || Planner <- [cnode, builtin]].

rate(Input, Planner, Callers) ->
    Self = self(),
    Until = erlang:monotonic_time(millisecond) + 2000,
    Pids = [spawn_link(fun() -> Self ! {done, self(), loop(Input, Planner, Until, 0)} end)
            || _ <- lists:seq(1, Callers)],
    Total = lists:sum([receive {done, P, K} -> K end || P <- Pids]),
    Total / 2.

loop(Input, Planner, Until, K) ->
    case erlang:monotonic_time(millisecond) >= Until of
        true -> K;
        false -> _ = call(Input, Planner), loop(Input, Planner, Until, K + 1)
    end.

time(F) ->
    T0 = erlang:monotonic_time(nanosecond),
    _ = F(),
    erlang:monotonic_time(nanosecond) - T0.

percentiles(Ns) ->
    S = list_to_tuple(lists:sort(Ns)),
    N = tuple_size(S),
    {element(max(1, round(N * 0.5)), S), element(max(1, round(N * 0.99)), S)}.

us(Ns) when Ns >= 10000000 -> io_lib:format("~.1f ms", [Ns / 1.0e6]);
us(Ns) -> io_lib:format("~b us", [round(Ns / 1000)]).

ratio(Builtin, Cnode) ->
    io_lib:format("~.2fx", [Builtin / Cnode]).
