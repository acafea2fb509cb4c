%%% @doc Runs on a cluster node: forwards that node's events (a `local' subscription to
%%% `autonomic_events') to a process on the controlling node, which is connected hidden and so
%%% not on the cluster's bus. Exits when that process does.
-module(chaos_forwarder).

-export([start/1]).

%% @doc Starts a forwarder on this node for `To'; returns its pid.
-spec start(pid()) -> pid().
start(To) ->
    Self = self(),
    Pid = spawn(fun() ->
                        ok = autonomic_events:subscribe(local),
                        MRef = erlang:monitor(process, To),
                        Self ! {self(), subscribed},
                        loop(To, MRef)
                end),
    receive {Pid, subscribed} -> Pid after 5000 -> Pid end.

loop(To, MRef) ->
    receive
        {autonomic_event, E} -> To ! {chaos_event, E}, loop(To, MRef);
        {'DOWN', MRef, process, _, _} -> ok;
        _ -> loop(To, MRef)
    end.
