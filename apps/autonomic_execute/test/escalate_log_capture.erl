%%% @doc A logger handler for the escalation tests: sends every event of the
%%% `[autonomic, execute]' domain to the process in its config.
-module(escalate_log_capture).

-export([log/2]).

log(#{meta := #{domain := [autonomic, execute]}} = Event, #{config := #{pid := Pid}}) ->
    Pid ! {logged, Event},
    ok;
log(_Event, _Config) ->
    ok.
