%%% @doc The NIF loads, and `autonomic:transition/2' answers, everywhere a user runs autonomic:
%%% in `rebar3 shell', and in a self-contained release built by `rebar3 as prod tar', unpacked
%%% elsewhere, started as a daemon, queried and stopped. (Common Test itself is the third place:
%%% every other suite runs there.)
-module(autonomic_packaging_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("kernel/include/file.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([nif_loads_in_rebar3_shell/1, release_tarball_runs/1]).

-define(EXPR, "autonomic:transition(<<\"acme\">>, {signal, cpu, 92})").
-define(ANSWER, "{ok,intervene,{throttle,50}}").

suite() -> [{timetrap, {minutes, 10}}].

all() -> [nif_loads_in_rebar3_shell, release_tarball_runs].

init_per_suite(Config) ->
    Root = project_root(),
    Rebar3 = os:find_executable("rebar3"),
    ?assertNotEqual(false, Rebar3),
    [{root, Root}, {rebar3, Rebar3} | Config].

end_per_suite(_Config) ->
    ok.

init_per_testcase(release_tarball_runs, Config) ->
    Dir = filename:join(?config(priv_dir, Config), "release"),
    [{release_dir, Dir}, {release_bin, filename:join([Dir, "bin", "autonomic"])} | Config];
init_per_testcase(_, Config) ->
    Config.

end_per_testcase(release_tarball_runs, Config) ->
    %% Stop the daemon if the test failed half way; harmless when it is not running.
    Bin = ?config(release_bin, Config),
    _ = filelib:is_regular(Bin) andalso run(Bin, ["stop"], [], 30000),
    ok;
end_per_testcase(_, _Config) ->
    ok.

%%% Tests

nif_loads_in_rebar3_shell(Config) ->
    Port = open_port({spawn_executable, ?config(rebar3, Config)}, [
        {args, ["shell"]},
        {cd, ?config(root, Config)},
        {env, [{"TERM", "dumb"}]},
        stream,
        binary,
        exit_status,
        stderr_to_stdout
    ]),
    try
        %% Input typed before the shell is up would be read by the boot-time reader and lost.
        {ok, _} = await(Port, <<"Eshell">>, <<>>, 180000),
        true = port_command(Port, ["io:format(\"RESULT ~p~n\", [", ?EXPR, "]).\n"]),
        {ok, Out} = await(Port, <<"RESULT ", ?ANSWER>>, <<>>, 30000),
        ct:log("rebar3 shell said:~n~ts", [Out]),
        true = port_command(Port, "halt().\n"),
        ?assertMatch({exit, 0}, await_exit(Port, 30000))
    after
        catch port_close(Port)
    end.

release_tarball_runs(Config) ->
    Root = ?config(root, Config),
    {0, BuildOut} = run(?config(rebar3, Config), ["as", "prod", "tar"], [{cd, Root}], 600000),
    ct:log("rebar3 as prod tar:~n~ts", [BuildOut]),
    [Tar] = filelib:wildcard(filename:join(Root, "_build/prod/rel/autonomic/autonomic-*.tar.gz")),
    Dir = ?config(release_dir, Config),
    ok = filelib:ensure_path(Dir),
    ok = erl_tar:extract(Tar, [compressed, {cwd, Dir}]),
    %% As an operator would: give the node its own name (and so never clash with a running one).
    Name = "autonomic_rel_" ++ integer_to_list(erlang:unique_integer([positive])),
    [VmArgs] = filelib:wildcard(filename:join(Dir, "releases/*/vm.args")),
    {ok, Args} = file:read_file(VmArgs),
    ok = file:write_file(VmArgs, re:replace(Args, <<"^-sname .*$">>, ["-sname ", Name], [multiline])),
    Bin = ?config(release_bin, Config),
    {0, _} = run(Bin, ["daemon"], [], 60000),
    ok = wait_until_pong(Bin, 60),
    %% The NIF is a plain file of the unpacked release, not a link into the source tree.
    {0, Priv} = run(Bin, ["eval", "code:priv_dir(autonomic)."], [], 30000),
    PrivDir = string:trim(Priv, both, "\"\n"),
    ct:log("release priv dir: ~ts", [PrivDir]),
    ?assert(lists:prefix(Dir, PrivDir)),
    ?assertMatch({ok, #file_info{type = regular}}, file:read_link_info(filename:join(PrivDir, "libautonomic_nif.so"))),
    {0, Answer} = run(Bin, ["eval", ?EXPR ++ "."], [], 30000),
    ?assertEqual(?ANSWER, squash(Answer)),
    {0, Info} = run(Bin, ["eval", "autonomic:governor_info(<<\"acme\">>)."], [], 30000),
    ?assertMatch({match, _}, re:run(squash(Info), "transitions=>1[,}]")),
    {0, _} = run(Bin, ["stop"], [], 60000),
    ?assertMatch({1, _}, run(Bin, ["ping"], [], 30000)).

%%% Helpers

%% The release script's eval pretty-prints; compare terms without their whitespace.
squash(Text) ->
    [C || C <- Text, not lists:member(C, " \n\t")].

project_root() ->
    up(filename:dirname(code:which(?MODULE))).

up("/") ->
    error(project_root_not_found);
up(Dir) ->
    case filelib:is_file(filename:join(Dir, "rebar.config")) andalso filelib:is_file(filename:join(Dir, "Cargo.toml")) of
        true -> Dir;
        false -> up(filename:dirname(Dir))
    end.

%% Runs a program to completion; returns {ExitStatus, Output}.
run(Exe, Args, Opts, Timeout) ->
    Port = open_port({spawn_executable, Exe}, [{args, Args}, exit_status, stderr_to_stdout, binary, stream | Opts]),
    collect(Port, <<>>, erlang:monotonic_time(millisecond) + Timeout).

collect(Port, Acc, Deadline) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {Port, {data, D}} -> collect(Port, <<Acc/binary, D/binary>>, Deadline);
        {Port, {exit_status, S}} -> {S, unicode:characters_to_list(Acc)}
    after Left ->
        catch port_close(Port),
        {timeout, unicode:characters_to_list(Acc)}
    end.

await(Port, Pattern, Acc, Timeout) ->
    case binary:match(Acc, Pattern) of
        {_, _} ->
            {ok, Acc};
        nomatch ->
            receive
                {Port, {data, D}} -> await(Port, Pattern, <<Acc/binary, D/binary>>, Timeout);
                {Port, {exit_status, S}} -> ct:fail({exited, S, Acc})
            after Timeout ->
                ct:fail({timeout_waiting_for, Pattern, Acc})
            end
    end.

await_exit(Port, Timeout) ->
    receive
        {Port, {data, _}} -> await_exit(Port, Timeout);
        {Port, {exit_status, S}} -> {exit, S}
    after Timeout -> timeout
    end.

wait_until_pong(_Bin, 0) ->
    {error, no_pong};
wait_until_pong(Bin, N) ->
    case run(Bin, ["ping"], [], 10000) of
        {0, "pong" ++ _} ->
            ok;
        _ ->
            timer:sleep(1000),
            wait_until_pong(Bin, N - 1)
    end.
