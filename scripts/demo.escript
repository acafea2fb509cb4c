#!/usr/bin/env escript
%%! -noshell
%%% The main job (`make demo'): starts a distributed node with the autonomic application and
%%% plays the governor scenario, printing each transition. Later this grows into the self-healing
%%% demo on a local cluster.
-mode(compile).

main(_Args) ->
    Root = filename:dirname(filename:dirname(filename:absname(escript:script_name()))),
    [code:add_patha(Dir) || Dir <- filelib:wildcard(filename:join(Root, "_build/default/lib/*/ebin"))],
    _ = os:cmd("epmd -daemon"),
    Name = list_to_atom("autonomic_demo_" ++ os:getpid()),
    {ok, _} = net_kernel:start([Name, shortnames]),
    {ok, Started} = application:ensure_all_started(autonomic),
    io:format("node ~s up, started ~p~n~n", [node(), Started]),
    Tenant = <<"acme">>,
    Steps = [
        {signal, cpu, 45},
        {signal, cpu, 78},
        {signal, cpu, 78},
        {signal, cpu, 92},
        action_succeeded,
        {signal, cpu, 55}
    ],
    io:format("~-22s ~-10s ~-16s ~s~n", ["event", "state", "action", "consecutive_high"]),
    lists:foreach(
        fun(Event) ->
            {ok, State, Action} = autonomic:transition(Tenant, Event),
            {ok, #{consecutive_high := N}} = autonomic:governor_info(Tenant),
            io:format("~-22s ~-10s ~-16s ~b~n", [fmt(Event), State, fmt(Action), N])
        end,
        Steps
    ),
    {ok, Info} = autonomic:governor_info(Tenant),
    io:format("~ngovernor of ~s: ~p~n", [Tenant, Info]),
    ok = application:stop(autonomic),
    halt(0).

fmt(Term) -> lists:flatten(io_lib:format("~w", [Term])).
