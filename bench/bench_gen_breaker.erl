%%% @doc The plain alternative for `execute_bench': a circuit breaker that is a `gen_server'
%%% (every ask is a call to its process), with the same closed/open logic as far as `ask' goes.
-module(bench_gen_breaker).
-behaviour(gen_server).

-export([start/0, ask/1, melt/1, init/1, handle_call/3, handle_cast/2]).

start() -> gen_server:start(?MODULE, [], []).

ask(Pid) -> gen_server:call(Pid, ask).

melt(Pid) -> gen_server:call(Pid, melt).

init([]) -> {ok, #{state => closed, failures => 0}}.

handle_call(ask, _From, #{state := closed} = S) -> {reply, ok, S};
handle_call(ask, _From, S) -> {reply, blown, S};
handle_call(melt, _From, #{failures := F} = S) when F >= 4 -> {reply, ok, S#{state := open}};
handle_call(melt, _From, #{failures := F} = S) -> {reply, ok, S#{failures := F + 1}}.

handle_cast(_Msg, S) -> {noreply, S}.
