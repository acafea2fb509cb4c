%%% @doc A worker for the supervisor_controller tests: logs its start (see {@link ctl_test_sup})
%%% and, with `#{stop_ms => N}', takes N ms to stop (it traps exits, so its supervisor waits).
%%% While the log table holds `{{fail, Id}}', a worker `Id' refuses to start.
-module(ctl_test_worker).
-behaviour(gen_server).

-export([start_link/2, init/1, handle_call/3, handle_cast/2, terminate/2]).

start_link(Id, Opts) ->
    gen_server:start_link(?MODULE, {Id, Opts}, []).

init({Id, Opts}) ->
    case {maps:get(ignore, Opts, false), ets:member(ctl_test_log, {fail, Id})} of
        {true, _} ->
            ignore;
        {false, true} ->
            {stop, refused};
        {false, false} ->
            _ = maps:is_key(stop_ms, Opts) andalso process_flag(trap_exit, true),
            true = ets:insert(ctl_test_log, {erlang:unique_integer([monotonic, positive]), Id, self()}),
            {ok, Opts}
    end.

handle_call(_Req, _From, S) -> {reply, ok, S}.

handle_cast(_Msg, S) -> {noreply, S}.

terminate(_Reason, #{stop_ms := Ms}) -> timer:sleep(Ms);
terminate(_Reason, _S) -> ok.
