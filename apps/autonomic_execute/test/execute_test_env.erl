%%% @doc Helpers shared by the Execute toolkit's tests: starting the application on this node with
%%% its own data directory (the ledger lives there) and the monitor's endpoint on a free port.
-module(execute_test_env).

-export([start/0, start/1, stop/1, temp_dir/1]).

%% @doc Starts `autonomic_execute' (and what it needs) with default settings.
-spec start() -> {[atom()], file:filename()}.
start() ->
    start([]).

%% @doc Starts it with `Env' (`[{Key, Value}]' of `autonomic_execute') set first. Returns the
%% applications started and the data directory.
-spec start([{atom(), term()}]) -> {[atom()], file:filename()}.
start(Env) ->
    Dir = temp_dir("execute"),
    _ = application:stop(autonomic_execute),
    _ = application:load(autonomic),
    _ = application:load(autonomic_monitor),
    _ = application:load(autonomic_execute),
    ok = application:set_env(autonomic, data_dir, Dir),
    ok = application:set_env(autonomic_monitor, metrics_port, 0),
    [ok = application:set_env(autonomic_execute, K, V) || {K, V} <- Env],
    {ok, Apps} = application:ensure_all_started(autonomic_execute),
    {Apps, Dir}.

%% @doc Stops what {@link start/1} started and forgets its settings.
-spec stop({[atom()], file:filename()}) -> ok.
stop({Apps, Dir}) ->
    [_ = application:stop(A) || A <- lists:reverse(Apps)],
    _ = application:stop(autonomic_execute),
    [ok = application:unset_env(autonomic_execute, K) || {K, _} <- application:get_all_env(autonomic_execute)],
    ok = application:unset_env(autonomic, data_dir),
    _ = file:del_dir_r(Dir),
    ok.

%% @doc A fresh directory under /tmp.
-spec temp_dir(string()) -> file:filename().
temp_dir(Tag) ->
    Dir = filename:join("/tmp", "autonomic-" ++ Tag ++ "-test-" ++ os:getpid() ++ "-"
                        ++ integer_to_list(erlang:unique_integer([positive]))),
    ok = filelib:ensure_path(Dir),
    Dir.
