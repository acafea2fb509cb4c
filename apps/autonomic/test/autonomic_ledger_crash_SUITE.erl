%%% @doc Durability across a real crash. A real peer node (its own OS process) appends to a ledger
%%% from many processes, each reporting every receipt it got back as `{ok, _}' to this node; the
%%% test then `kill -9's the peer's OS process mid-stream, reopens the ledger's directory here and
%%% checks that every acknowledged receipt is there, unchanged, and that the chain verifies. Three
%%% crashes per policy, each on top of the last one's ledger; payloads up to 64 KiB make a kill in
%%% the middle of a write likely (the suite logs each torn tail that recovery cut off).
%%%
%%% Acknowledgements travel over distribution after `append' returned, so the ones lost in flight
%%% when the peer dies are simply not checked: what is checked is a subset of what was
%%% acknowledged, never something that was not.
-module(autonomic_ledger_crash_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([kill_9_with_fsync_always/1, kill_9_with_group_commit/1]).
%% Run on the peer.
-export([start_writers/5]).

-define(ROUNDS, 3).
-define(MIN_ACKS, 300).

suite() -> [{timetrap, {minutes, 5}}].

all() -> [kill_9_with_fsync_always, kill_9_with_group_commit].

init_per_suite(Config) ->
    ok = autonomic_ct:ensure_distributed(),
    Config.

end_per_suite(_Config) ->
    ok.

init_per_testcase(TC, Config) ->
    [{dir, filename:join(?config(priv_dir, Config), atom_to_list(TC))} | Config].

end_per_testcase(_TC, _Config) ->
    ok.

kill_9_with_fsync_always(Config) ->
    kill_9(?config(dir, Config), always, 8).

kill_9_with_group_commit(Config) ->
    kill_9(?config(dir, Config), {group_commit, 2}, 64).

%%% The test

kill_9(Dir, Fsync, Writers) ->
    Acked = lists:foldl(fun(Round, Acc) -> crash_round(Dir, Fsync, Writers, Round, Acc) end,
                        #{}, lists:seq(1, ?ROUNDS)),
    ct:log("~b acknowledged receipts over ~b crashes, all present", [map_size(Acked), ?ROUNDS]).

crash_round(Dir, Fsync, Writers, Round, Acked0) ->
    {_Peer, Node} = autonomic_ct:start_peer(ledger_crash, #{apps => []}),
    OsPid = erpc:call(Node, os, getpid, []),
    true = monitor_node(Node, true),
    ok = erpc:call(Node, ?MODULE, start_writers, [self(), Dir, Fsync, Writers, Round]),
    %% Append for a while: at least ?MIN_ACKS acknowledged, then a random extra delay so the kill
    %% lands at an arbitrary point of the write / fsync cycle.
    Acked1 = collect(Acked0, map_size(Acked0) + ?MIN_ACKS, erlang:monotonic_time(millisecond) + 60000),
    Acked2 = collect_for(Acked1, rand:uniform(200)),
    "" = os:cmd("kill -9 " ++ OsPid),
    Acked = receive
        {nodedown, Node} -> drain(Acked2)
    after 30000 ->
        ct:fail({peer_survived_kill, OsPid})
    end,
    NewThisRound = map_size(Acked) - map_size(Acked0),
    ?assert(NewThisRound >= ?MIN_ACKS),
    BytesBefore = segment_bytes(Dir),
    {ok, L} = autonomic_ledger:open(crash_check, #{dir => Dir}),
    Cut = BytesBefore - segment_bytes(Dir),
    Size = autonomic_ledger:size(L),
    ct:log("round ~b (~p): ~b acknowledged this round, ledger holds ~b receipts; "
           "recovery cut ~b bytes of torn tail", [Round, Fsync, NewThisRound, Size, Cut]),
    %% Every acknowledged receipt is there, exactly as it was acknowledged.
    maps:foreach(
        fun(Id, {Seq, Hash}) ->
            case autonomic_ledger:get(L, Id) of
                {ok, #{seq := Seq, hash := Hash}} -> ok;
                Other -> ct:fail({acknowledged_receipt_lost, Round, Id, Seq, Other})
            end
        end,
        Acked),
    ?assert(Size >= map_size(Acked)),
    ?assertEqual(ok, autonomic_ledger:verify(L)),
    {ok, All} = autonomic_ledger:tail(L, Size),
    ?assertEqual(ok, autonomic_ledger_verify:chain(All)),
    ok = autonomic_ledger:close(L),
    Acked.

collect(Acked, Want, Deadline) when map_size(Acked) >= Want ->
    _ = Deadline,
    Acked;
collect(Acked, Want, Deadline) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {acked, Id, Seq, Hash} -> collect(Acked#{Id => {Seq, Hash}}, Want, Deadline);
        {append_failed, Reason} -> ct:fail({append_failed, Reason})
    after Left ->
        ct:fail({too_few_acknowledgements, map_size(Acked), Want})
    end.

collect_for(Acked, Ms) ->
    Deadline = erlang:monotonic_time(millisecond) + Ms,
    collect_until(Acked, Deadline).

collect_until(Acked, Deadline) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {acked, Id, Seq, Hash} -> collect_until(Acked#{Id => {Seq, Hash}}, Deadline)
    after Left ->
        Acked
    end.

drain(Acked) ->
    receive
        {acked, Id, Seq, Hash} -> drain(Acked#{Id => {Seq, Hash}})
    after 0 ->
        Acked
    end.

segment_bytes(Dir) ->
    lists:sum([filelib:file_size(F) || F <- filelib:wildcard(filename:join(Dir, "*.seg"))]).

%%% On the peer

%% @doc Opens the ledger from a process that lives until the node dies, and starts `Writers'
%% appenders that report each acknowledged receipt to `Test'.
start_writers(Test, Dir, Fsync, Writers, Round) ->
    Self = self(),
    spawn(fun() ->
        {ok, L} = autonomic_ledger:open(crash_test, #{dir => Dir, fsync => Fsync}),
        [spawn(fun() -> write(Test, L, Round, W, 0) end) || W <- lists:seq(1, Writers)],
        Self ! started,
        receive never -> ok end
    end),
    receive started -> ok after 30000 -> {error, not_started} end.

write(Test, L, Round, W, I) ->
    Result = <<Round:16, W:16, I:32, (payload(I))/binary>>,
    case autonomic_ledger:append(L, <<"crash_test">>, Result) of
        {ok, #{id := Id, seq := Seq, hash := Hash}} ->
            Test ! {acked, Id, Seq, Hash},
            write(Test, L, Round, W, I + 1);
        {error, Reason} ->
            Test ! {append_failed, Reason}
    end.

%% Mostly small payloads, one in eight between 16 and 64 KiB.
payload(I) ->
    case rand:uniform(8) of
        1 -> binary:copy(<<(I band 255)>>, 16384 + rand:uniform(49152));
        _ -> binary:copy(<<"x">>, rand:uniform(200))
    end.
