%%% @doc The quorum manager's durable state: one small file holding the committed configuration
%%% and the acceptor's promise and accepted value for the next epoch (Paxos needs both to survive
%%% a restart, or a restarted member could vote twice in one epoch).
%%%
%%% A save writes the whole state to `state.tmp', `fsync's it, renames it over `state' and then
%%% `fsync's the directory, so a crash at any point leaves either the old state or the new one,
%%% whole, and a save that returned survives a power loss. OTP cannot open a directory, so the
%%% directory sync runs coreutils' `sync DIR' (an `fsync' of the directory, about 1 ms).
%%%
%%% The file is `<<"AQS1", Crc32:32, Size:32, term_to_binary(State)>>'; a file that does not check
%%% out is reported as `{error, {corrupt, Path}}', never guessed at.
-module(quorum_store).

-export([path/0, path/1, load/1, save/2]).

-define(MAGIC, "AQS1").

%% @doc The state file of this node: `quorum/state' under {@link autonomic_config:data_dir/0}.
-spec path() -> file:filename().
path() ->
    path(autonomic_config:data_dir("quorum")).

%% @doc The state file in `Dir'.
-spec path(file:filename()) -> file:filename().
path(Dir) ->
    filename:join(Dir, "state").

%% @doc Reads the state; `none' when no state was ever saved.
-spec load(file:filename()) -> {ok, term()} | none | {error, term()}.
load(Path) ->
    case file:read_file(Path) of
        {ok, <<?MAGIC, Crc:32, Size:32, Bin:Size/binary>>} ->
            case erlang:crc32(Bin) of
                Crc -> decode(Bin, Path);
                _ -> {error, {corrupt, Path}}
            end;
        {ok, _} ->
            {error, {corrupt, Path}};
        {error, enoent} ->
            none;
        {error, Reason} ->
            {error, {Reason, Path}}
    end.

%% Not `[safe]': the file names nodes (atoms) this VM may not have seen yet since it started.
%% It is our own file, and its checksum was verified.
decode(Bin, Path) ->
    try binary_to_term(Bin) of
        Term -> {ok, Term}
    catch
        error:badarg -> {error, {corrupt, Path}}
    end.

%% @doc Writes the state durably and atomically (see the module doc).
-spec save(file:filename(), term()) -> ok | {error, term()}.
save(Path, Term) ->
    Bin = term_to_binary(Term),
    Data = <<?MAGIC, (erlang:crc32(Bin)):32, (byte_size(Bin)):32, Bin/binary>>,
    Tmp = Path ++ ".tmp",
    case write_synced(Tmp, Data) of
        ok ->
            case file:rename(Tmp, Path) of
                ok -> sync_dir(filename:dirname(Path));
                {error, Reason} -> {error, {rename, Reason}}
            end;
        {error, _} = E ->
            E
    end.

write_synced(File, Data) ->
    case file:open(File, [write, raw, binary]) of
        {ok, Fd} ->
            try
                case file:write(Fd, Data) of
                    ok ->
                        case file:sync(Fd) of
                            ok -> ok;
                            {error, R} -> {error, {sync, R}}
                        end;
                    {error, R} ->
                        {error, {write, R}}
                end
            after
                _ = file:close(Fd)
            end;
        {error, R} ->
            {error, {open, R}}
    end.

%% fsync of the directory, so the rename itself is durable.
sync_dir(Dir) ->
    case os:find_executable("sync") of
        false ->
            {error, no_sync_executable};
        Sync ->
            Port = erlang:open_port({spawn_executable, Sync}, [{args, [Dir]}, exit_status, stderr_to_stdout, binary]),
            await_exit(Port, <<>>)
    end.

await_exit(Port, Out) ->
    receive
        {Port, {data, D}} -> await_exit(Port, <<Out/binary, D/binary>>);
        {Port, {exit_status, 0}} -> ok;
        {Port, {exit_status, S}} -> {error, {sync_dir, S, Out}}
    after 10000 ->
        catch port_close(Port),
        {error, {sync_dir, timeout}}
    end.
