%%% @doc The supervision tree `execute_bench' restarts: a top supervisor over `bench_mid', which
%%% supervises `Workers' idle workers.
-module(bench_restart_sup).
-behaviour(supervisor).

-export([start_tree/1, start_link/2, worker/0, init/1]).

start_tree(Workers) ->
    {ok, Top} = supervisor:start_link({local, bench_top}, ?MODULE, {top, Workers}),
    true = unlink(Top),
    Top.

start_link(Name, Arg) ->
    supervisor:start_link({local, Name}, ?MODULE, Arg).

worker() ->
    {ok, spawn_link(fun() -> receive stop -> ok end end)}.

init({top, Workers}) ->
    {ok, {#{strategy => one_for_one, intensity => 1000, period => 1},
          [#{id => bench_mid, type => supervisor, start => {?MODULE, start_link, [bench_mid, {mid, Workers}]}}]}};
init({mid, Workers}) ->
    {ok, {#{strategy => one_for_one, intensity => 1000, period => 1},
          [#{id => I, start => {?MODULE, worker, []}} || I <- lists:seq(1, Workers)]}}.
