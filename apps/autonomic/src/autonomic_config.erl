%%% @doc Where autonomic keeps its files, and other node-wide settings read from the application
%%% environment.
-module(autonomic_config).

-export([data_dir/0, data_dir/1]).

%% @doc The node's data directory (ledgers, knowledge base). Application env `data_dir' when set;
%% otherwise `autonomic_data/<node name>' under the current directory, so that several nodes on
%% one host never share files. Created if missing.
-spec data_dir() -> file:filename().
data_dir() ->
    Dir = case application:get_env(autonomic, data_dir) of
        {ok, D} when is_list(D); is_binary(D) -> D;
        _ -> filename:join(["autonomic_data", atom_to_list(node())])
    end,
    Abs = filename:absname(Dir),
    ok = filelib:ensure_path(Abs),
    Abs.

%% @doc A subdirectory of the data directory, created if missing.
-spec data_dir(string()) -> file:filename().
data_dir(Sub) ->
    Dir = filename:join(data_dir(), Sub),
    ok = filelib:ensure_path(Dir),
    Dir.
