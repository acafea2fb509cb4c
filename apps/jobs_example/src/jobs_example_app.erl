%%% @doc The jobs example workload's application callback.
-module(jobs_example_app).
-behaviour(application).

-export([start/2, stop/1]).

%% @doc Starts the workload's supervision tree.
-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    ok = jobs_example:init_counters(),
    jobs_example_sup:start_link().

%% @doc Nothing to clean: the tree owns everything.
-spec stop(term()) -> ok.
stop(_State) ->
    ok.
