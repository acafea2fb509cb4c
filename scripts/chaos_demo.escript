#!/usr/bin/env escript
%%! -noshell
%%% The main job (`make demo'): a local 5-node cluster running the jobs workload and the MAPE-K
%%% loop, chaos injecting real faults, live progress, then the chaos report, SLO compliance, the
%%% workload's audit and the ledgers' verification (chaos_demo). Every node it starts goes down
%%% with it, also on Ctrl-C (the peers are driven over their stdio, which closes).
%%%
%%% Flags: --duration SECONDS (120), --interval MS (5000), --seed N, --rate JOBS_PER_S_PER_NODE
%%% (20), --report FILE (chaos_report.json), --metrics-port PORT (9568; 0 picks one).
-mode(compile).

main(Args) ->
    %% Progress goes to the console; the nodes' own reports (alarms, applications stopping) do not.
    ok = logger:set_primary_config(level, warning),
    Root = filename:dirname(filename:dirname(filename:absname(escript:script_name()))),
    [code:add_patha(Dir) || Dir <- filelib:wildcard(filename:join(Root, "_build/default/lib/*/ebin"))],
    case opts(Args, #{report => "chaos_report.json"}) of
        {ok, Opts} ->
            R = chaos_demo:run(Opts),
            #{audit := #{lost := Lost}, report := #{failed_recoveries := Failed}} = R,
            halt(case Lost of 0 -> 0; _ -> 1 end + case Failed of 0 -> 0; _ -> 0 end);
        {error, Why} ->
            io:format(standard_error, "chaos_demo: ~s~nflags: --duration S --interval MS --seed N --rate N --report FILE --metrics-port P~n", [Why]),
            halt(2)
    end.

opts([], Acc) -> {ok, Acc};
opts(["--duration", S | T], Acc) -> int(S, fun(V) -> Acc#{duration_ms => V * 1000} end, T);
opts(["--interval", S | T], Acc) -> int(S, fun(V) -> Acc#{interval_ms => V} end, T);
opts(["--seed", S | T], Acc) -> int(S, fun(V) -> Acc#{seed => V} end, T);
opts(["--rate", S | T], Acc) -> int(S, fun(V) -> Acc#{rate => V} end, T);
opts(["--metrics-port", S | T], Acc) -> int(S, fun(V) -> Acc#{metrics_port => V} end, T);
opts(["--report", F | T], Acc) -> opts(T, Acc#{report => filename:absname(F)});
opts([Other | _], _) -> {error, io_lib:format("unknown flag ~s", [Other])}.

int(S, Set, T) ->
    case string:to_integer(S) of
        {V, ""} when V >= 0 -> opts(T, Set(V));
        _ -> {error, io_lib:format("not a number: ~s", [S])}
    end.
