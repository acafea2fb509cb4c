%%% @doc EUnit tests of the durable state file (`quorum_store'): a round trip, no file, a torn or
%%% corrupted file (reported, never guessed at), and a leftover temporary file from a crash in
%%% the middle of a save (ignored: the last complete save holds).
-module(quorum_store_tests).

-include_lib("eunit/include/eunit.hrl").

store_test_() ->
    {foreach, fun setup/0, fun cleanup/1, [
        fun round_trip/1,
        fun no_file/1,
        fun corrupt_file/1,
        fun torn_file/1,
        fun crash_during_save/1
    ]}.

setup() ->
    Dir = filename:join(["/tmp", "quorum_store_tests_" ++ integer_to_list(erlang:unique_integer([positive]))]),
    ok = filelib:ensure_path(Dir),
    Dir.

cleanup(Dir) ->
    _ = file:del_dir_r(Dir),
    ok.

state(Epoch) ->
    #{config => #{epoch => Epoch, members => #{'a@h' => 1}, standby => #{}}, acceptor => quorum_paxos:new(Epoch + 1)}.

round_trip(Dir) ->
    Path = quorum_store:path(Dir),
    ok = quorum_store:save(Path, state(1)),
    ok = quorum_store:save(Path, state(2)),
    [?_assertEqual({ok, state(2)}, quorum_store:load(Path)),
     ?_assertNot(filelib:is_regular(Path ++ ".tmp"))].

no_file(Dir) ->
    ?_assertEqual(none, quorum_store:load(quorum_store:path(Dir))).

corrupt_file(Dir) ->
    Path = quorum_store:path(Dir),
    ok = quorum_store:save(Path, state(3)),
    {ok, Bin} = file:read_file(Path),
    Flipped = binary:part(Bin, 0, byte_size(Bin) - 1),
    Last = binary:last(Bin) bxor 1,
    ok = file:write_file(Path, <<Flipped/binary, Last>>),
    ?_assertEqual({error, {corrupt, Path}}, quorum_store:load(Path)).

torn_file(Dir) ->
    Path = quorum_store:path(Dir),
    ok = quorum_store:save(Path, state(3)),
    {ok, Bin} = file:read_file(Path),
    ok = file:write_file(Path, binary:part(Bin, 0, byte_size(Bin) div 2)),
    ?_assertEqual({error, {corrupt, Path}}, quorum_store:load(Path)).

crash_during_save(Dir) ->
    Path = quorum_store:path(Dir),
    ok = quorum_store:save(Path, state(4)),
    ok = file:write_file(Path ++ ".tmp", <<"AQS1 half written">>),
    ?_assertEqual({ok, state(4)}, quorum_store:load(Path)).
