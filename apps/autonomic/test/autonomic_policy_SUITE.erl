%%% @doc The resilience policy inside the running application, on real peer nodes: the
%%% application installs the configured policy (a file or a map) at start and sets the planner's
%%% policy from it; it refuses to start on an invalid one, with every problem in the reason
%%% (a terms map, a Turtle file with a syntax error, a file that does not exist); at run time,
%%% set/1 and reload/0 install a good policy with an event and a metric, and a bad one is
%%% rejected (event, metric) while the running policy stays in force.
-module(autonomic_policy_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([starts_with_the_configured_file/1, refuses_to_start_with_every_problem_listed/1,
         set_at_run_time/1, reload_applies_the_edited_file/1]).

suite() -> [{timetrap, {minutes, 3}}].

all() -> [starts_with_the_configured_file, refuses_to_start_with_every_problem_listed,
          set_at_run_time, reload_applies_the_edited_file].

init_per_suite(Config) ->
    ok = autonomic_ct:ensure_distributed(),
    %% This node runs the application too: its event bus is how a subscriber here sees the
    %% peers' events.
    {ok, _} = application:ensure_all_started(autonomic),
    Root = root(filename:dirname(code:which(?MODULE))),
    [{example_config, filename:join([Root, "erlang", "policy.config"])},
     {example_ttl, filename:join([Root, "erlang", "policy.ttl"])} | Config].

end_per_suite(_Config) ->
    application:stop(autonomic).

end_per_testcase(_TC, _Config) ->
    autonomic_events:unsubscribe().

root("/") -> error(no_root);
root(Dir) ->
    case filelib:is_regular(filename:join([Dir, "erlang", "policy.config"])) of
        true -> Dir;
        false -> root(filename:dirname(Dir))
    end.

peer(Env, Apps) ->
    autonomic_ct:start_peer(policy, #{env => [{autonomic, K, V} || {K, V} <- Env], apps => Apps}).

metric(Node, Name, Labels) ->
    erpc:call(Node, autonomic_metrics, value, [Name, Labels]).

%% The next event of this type from Node.
event(Node, Type) ->
    receive
        {autonomic_event, #{type := Type, node := Node, detail := Detail}} -> Detail
    after 5000 ->
        ct:fail({no_event, Type, Node})
    end.

%%% Tests

starts_with_the_configured_file(Config) ->
    Path = ?config(example_ttl, Config),
    {Peer, Node} = peer([{policy, Path}], [autonomic]),
    {ok, Expected} = autonomic_policy:load_file(Path),
    ?assertEqual(Expected, erpc:call(Node, autonomic_policy, current, [])),
    ?assertMatch(#{version := 1, source := {file, Path}, name := <<"jobs-cluster">>},
                 erpc:call(Node, autonomic_policy, info, [])),
    %% The planner's policy is the policy's planner section.
    ?assertEqual({ok, maps:get(planner, Expected)},
                 erpc:call(Node, application, get_env, [autonomic, planner_policy])),
    ?assertEqual(1, metric(Node, autonomic_policy_version, #{})),
    ?assertEqual(1, metric(Node, autonomic_policy_changes_total, #{result => installed})),
    %% The metrics are on /metrics.
    Text = iolist_to_binary(erpc:call(Node, autonomic_metrics, render, [])),
    ?assertNotEqual(nomatch, binary:match(Text, <<"autonomic_policy_changes_total{result=\"installed\"} 1">>)),
    %% An inline map works too, and unset means the default policy.
    {Peer2, Node2} = peer([{policy, #{loop => #{interval_ms => 2000}}}], [autonomic]),
    ?assertEqual({ok, 2000}, erpc:call(Node2, autonomic_policy, get, [[loop, interval_ms]])),
    ?assertMatch(#{source := inline}, erpc:call(Node2, autonomic_policy, info, [])),
    peer:stop(Peer2),
    {Peer3, Node3} = peer([], [autonomic]),
    ?assertEqual(autonomic_policy:defaults(), erpc:call(Node3, autonomic_policy, current, [])),
    ?assertMatch(#{source := default, version := 1}, erpc:call(Node3, autonomic_policy, info, [])),
    peer:stop(Peer3),
    peer:stop(Peer).

refuses_to_start_with_every_problem_listed(Config) ->
    Bad = #{slo => #{availability => 1.5},
            loop => #{interval_ms => 20000, max_cycle_ms => 10000},
            chaos => #{weights => #{dragons => 1}}},
    {Peer, _} = peer([{policy, Bad}], [crypto]),
    {error, {{invalid_config, policy, Problems}, _}} = peer:call(Peer, application, start, [autonomic]),
    ?assertEqual([[slo, availability], [loop, max_cycle_ms], [chaos, weights, dragons]],
                 [F || #{field := F} <- Problems]),
    [?assertMatch(#{value := _, why := <<_/binary>>}, P) || P <- Problems],
    %% Nothing of the application runs.
    ?assertEqual(undefined, peer:call(Peer, erlang, whereis, [autonomic_sup])),
    peer:stop(Peer),
    %% A Turtle file with a syntax error and a bad literal: the syntax error, with its place.
    Dir = ?config(priv_dir, Config),
    Ttl = filename:join(Dir, "bad.ttl"),
    ok = file:write_file(Ttl, <<"@prefix res: <https://autonomic.dev/ns/resilience#> .\n"
                                "<urn:p> a res:ResiliencePolicy ;\n"
                                "  res:slo [ res:mttr \"soon\" ] ;\n"
                                "  res:loop [ res:interval \"PT1S\" \n">>),
    {Peer2, _} = peer([{policy, Ttl}], [crypto]),
    {error, {{invalid_config, policy, [P2]}, _}} = peer:call(Peer2, application, start, [autonomic]),
    ?assertMatch(#{field := [], line := _, column := _, why := <<"Turtle syntax error: ", _/binary>>}, P2),
    peer:stop(Peer2),
    %% A file that is not there.
    Missing = filename:join(Dir, "missing.config"),
    {Peer3, _} = peer([{policy, Missing}], [crypto]),
    {error, {{invalid_config, policy, [#{value := Missing, why := <<"cannot read the file", _/binary>>}]}, _}} =
        peer:call(Peer3, application, start, [autonomic]),
    peer:stop(Peer3),
    %% Something that is neither a map nor a file name.
    {Peer4, _} = peer([{policy, 42}], [crypto]),
    {error, {{invalid_config, policy, [#{value := 42}]}, _}} = peer:call(Peer4, application, start, [autonomic]),
    peer:stop(Peer4).

set_at_run_time(Config) ->
    {Peer, Node} = peer([{policy, ?config(example_config, Config)}], [autonomic]),
    ok = autonomic_events:subscribe(cluster),
    ok = autonomic_ct:await_members(Node, 1),
    Before = erpc:call(Node, autonomic_policy, current, []),
    {ok, New} = erpc:call(Node, autonomic_policy, set, [Before#{loop => #{interval_ms => 3000}}]),
    ?assertMatch(#{version := 2, source := api, changed := [loop]}, event(Node, policy_changed)),
    ?assertEqual(New, erpc:call(Node, autonomic_policy, current, [])),
    ?assertEqual({ok, 3000}, erpc:call(Node, autonomic_policy, get, [[loop, interval_ms]])),
    ?assertEqual(2, metric(Node, autonomic_policy_version, #{})),
    %% A bad policy: rejected with every problem, the policy in force stays.
    {error, Problems} = erpc:call(Node, autonomic_policy, set,
                                  [#{loop => #{interval_ms => 0}, gates => #{cooldown_ms => -1}}]),
    ?assertEqual(2, length(Problems)),
    ?assertMatch(#{source := api, problems := Problems}, event(Node, policy_rejected)),
    ?assertEqual(New, erpc:call(Node, autonomic_policy, current, [])),
    ?assertMatch(#{version := 2}, erpc:call(Node, autonomic_policy, info, [])),
    ?assertEqual(1, metric(Node, autonomic_policy_changes_total, #{result => rejected})),
    ?assertEqual(2, metric(Node, autonomic_policy_changes_total, #{result => installed})),
    ?assertEqual({ok, maps:get(planner, New)}, erpc:call(Node, application, get_env, [autonomic, planner_policy])),
    %% Concurrent installs are serialized: every one gets its own version.
    Results = erpc:call(Node, fun() ->
                                      Self = self(),
                                      Pids = [spawn(fun() -> Self ! {self(), autonomic_policy:set(#{chaos => #{seed => N}})} end)
                                              || N <- lists:seq(1, 20)],
                                      [receive {P, R} -> R end || P <- Pids]
                              end),
    ?assertEqual(20, length([ok || {ok, _} <- Results])),
    ?assertMatch(#{version := 22}, erpc:call(Node, autonomic_policy, info, [])),
    Versions = lists:sort([V || _ <- lists:seq(1, 20), #{version := V} <- [event(Node, policy_changed)]]),
    ?assertEqual(lists:seq(3, 22), Versions),
    peer:stop(Peer).

reload_applies_the_edited_file(Config) ->
    File = filename:join(?config(priv_dir, Config), "live.config"),
    ok = file:write_file(File, "#{name => <<\"live\">>, gates => #{cooldown_ms => 1000}}.\n"),
    {Peer, Node} = peer([{policy, File}], [autonomic]),
    ?assertEqual({ok, 1000}, erpc:call(Node, autonomic_policy, get, [[gates, cooldown_ms]])),
    ok = file:write_file(File, "#{name => <<\"live\">>, gates => #{cooldown_ms => 2000}}.\n"),
    {ok, _} = erpc:call(Node, autonomic_policy, reload, []),
    ?assertEqual({ok, 2000}, erpc:call(Node, autonomic_policy, get, [[gates, cooldown_ms]])),
    ?assertMatch(#{version := 2, source := {file, File}}, erpc:call(Node, autonomic_policy, info, [])),
    %% An edit with problems: reload says so and the policy in force stays.
    ok = file:write_file(File, "#{gates => #{cooldown_ms => -5, blast_radius => 2}}.\n"),
    {error, [#{field := [gates, blast_radius]}, #{field := [gates, cooldown_ms]}]} =
        erpc:call(Node, autonomic_policy, reload, []),
    ?assertEqual({ok, 2000}, erpc:call(Node, autonomic_policy, get, [[gates, cooldown_ms]])),
    ?assertMatch(#{version := 2}, erpc:call(Node, autonomic_policy, info, [])),
    peer:stop(Peer).
