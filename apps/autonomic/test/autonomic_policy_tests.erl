%%% @doc EUnit: the policy API without the application: both example files load to the same
%%% policy; file problems (missing, unknown kind, several terms, syntax errors with their line,
%%% too large); the Turtle import's problems and the validator's listed together; every name the
%%% validator knows comes through the Turtle import as its atom; set/1 with a bad policy leaves
%%% the running one in force; get/1,2 and the planner's policy.
-module(autonomic_policy_tests).

-include_lib("eunit/include/eunit.hrl").

-define(P, autonomic_policy).
-define(PREFIX, "@prefix res: <https://autonomic.dev/ns/resilience#> .\n"
                "@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n").

root() ->
    %% The tests run from the umbrella's root or from _build; find erlang/ upwards from here.
    find_root(filename:dirname(code:which(?MODULE))).

find_root("/") -> error(no_root);
find_root(Dir) ->
    case filelib:is_regular(filename:join([Dir, "erlang", "policy.config"])) of
        true -> Dir;
        false -> find_root(filename:dirname(Dir))
    end.

example(Name) ->
    filename:join([root(), "erlang", Name]).

tmp_file(Name, Content) ->
    Dir = filename:join(["/tmp", "autonomic_policy_tests_" ++ os:getpid()]),
    ok = filelib:ensure_path(Dir),
    Path = filename:join(Dir, Name),
    ok = file:write_file(Path, Content),
    Path.

%%% The examples

the_two_examples_load_to_the_same_policy_test() ->
    {ok, Terms} = ?P:load_file(example("policy.config")),
    {ok, Turtle} = ?P:load_file(example("policy.ttl")),
    ?assertEqual(Terms, Turtle),
    %% Through the explicit functions too, and by their binary names.
    ?assertEqual({ok, Terms}, ?P:load_terms(example("policy.config"))),
    ?assertEqual({ok, Terms}, ?P:load_turtle(list_to_binary(example("policy.ttl")))),
    %% The example is not the default policy: it sets things.
    ?assertNotEqual(?P:defaults(), Terms),
    ?assertEqual(<<"jobs-cluster">>, maps:get(name, Terms)),
    ?assertEqual(0.999, maps:get(availability, maps:get(slo, Terms))),
    ?assertEqual(42, maps:get(seed, maps:get(chaos, Terms))),
    %% And it is normalized: validating it again changes nothing.
    ?assertEqual({ok, Terms}, ?P:validate(Terms)).

%%% File problems

file_problems_test() ->
    Missing = "/nonexistent/policy.config",
    ?assertMatch({error, [#{field := [], value := Missing, why := <<"cannot read the file: no such file", _/binary>>}]},
                 ?P:load_file(Missing)),
    ?assertMatch({error, [#{field := [], why := <<"cannot read the file", _/binary>>}]},
                 ?P:load_file("/nonexistent/policy.ttl")),
    ?assertMatch({error, [#{field := [], value := "policy.yaml", why := <<"unknown kind of policy file", _/binary>>}]},
                 ?P:load_file("policy.yaml")),
    Two = tmp_file("two.config", "#{}.\n#{}.\n"),
    ?assertMatch({error, [#{field := [], why := <<"the file holds 2 terms", _/binary>>}]}, ?P:load_file(Two)),
    Bad = tmp_file("bad.config", "%% a comment\n#{slo => #{mttr_ms => 100}\n}}.\n"),
    {error, [P]} = ?P:load_file(Bad),
    ?assertMatch(#{field := [], value := Bad, line := 3, why := <<"syntax error: ", _/binary>>}, P),
    Big = tmp_file("big.ttl", binary:copy(<<"#">>, 1048577)),
    ?assertMatch({error, [#{why := <<"the file is 1048577 bytes; at most 1048576 are read">>}]}, ?P:load_file(Big)),
    ?assertMatch({error, [#{field := [], why := <<"the document is 1048577 bytes", _/binary>>}]},
                 ?P:parse_turtle(binary:copy(<<"#">>, 1048577))),
    ?assertMatch({error, [#{field := [], value := 42}]}, ?P:parse_turtle(42)),
    %% A terms file's problems are the validator's.
    Invalid = tmp_file("invalid.config", "#{loop => #{interval_ms => 0}, chaos => #{seed => -1}}.\n"),
    ?assertMatch({error, [#{field := [loop, interval_ms]}, #{field := [chaos, seed]}]}, ?P:load_file(Invalid)).

%%% Turtle

turtle_syntax_errors_name_line_and_column_test() ->
    Doc = <<?PREFIX "<urn:p> a res:ResiliencePolicy ;\n  res:slo [ res:mttr \"PT3S ] .\n">>,
    {error, [P]} = ?P:parse_turtle(Doc),
    ?assertMatch(#{field := [], line := 4, column := 22, why := <<"Turtle syntax error: ", _/binary>>}, P),
    ?assert(is_binary(maps:get(value, P))).

turtle_problems_and_validator_problems_are_listed_together_test() ->
    Doc = <<?PREFIX "<urn:p> a res:ResiliencePolicy ;\n"
            "  res:slo [ res:availabilitySLO 150 ; res:mttr \"PT3X\" ; res:bogus 1 ] ;\n"
            "  res:failureMode [ res:type res:Gremlins ; res:recoveryStrategy ( res:Prayer res:Escalate ) ] ;\n"
            "  res:loop [ res:interval \"PT20S\" ; res:maxCycleTime \"PT10S\" ] .\n">>,
    {error, Ps} = ?P:parse_turtle(Doc),
    ?assertMatch([%% the import's
                  #{field := [slo, <<"bogus">>], value := <<"\"1\"^^xsd:integer">>,
                    why := <<"unknown predicate res:bogus on a slo node", _/binary>>},
                  #{field := [slo, mttr_ms], value := <<"\"PT3X\"">>, why := <<"not an xsd:duration", _/binary>>},
                  %% the validator's
                  #{field := [slo, availability], value := {percent, 150}},
                  #{field := [failure_modes, _], why := <<"unknown failure type", _/binary>>},
                  #{field := [loop, max_cycle_ms], value := 10000}],
                 Ps),
    %% An unknown name stays a binary unless the atom already exists (another test module may
    %% have made it): the import never creates atoms.
    [_, _, _, #{field := [_, Gremlins]}, _] = Ps,
    ?assert(Gremlins =:= <<"gremlins">> orelse Gremlins =:= gremlins).

%% The import makes names existing atoms; every name the validator knows must come through as
%% its atom (this checks the Rust side's UpperCamelCase to snake_case against the Erlang tables).
every_known_name_comes_through_turtle_test() ->
    V = autonomic_policy_validate,
    Modes = [io_lib:format("  res:failureMode [ res:type res:~s ; res:recoveryStrategy ( ~s ) ; res:severity res:~s ] ;~n",
                           [camel(T), [["res:", camel(S), " "] || S <- V:strategies()], camel(Sev)])
             || {T, Sev} <- lists:zip(V:failure_types(), cycle(V:severities(), length(V:failure_types())))],
    Weights = [io_lib:format("[ res:scenario res:~s ; res:weight 1 ] ", [camel(S)]) || S <- V:scenarios()],
    Doc = iolist_to_binary([?PREFIX, "<urn:p> a res:ResiliencePolicy ;\n", Modes,
                            "  res:chaosSchedule [ res:scenarioWeight ", lists:join(", ", Weights), "] .\n"]),
    {ok, P} = ?P:parse_turtle(Doc),
    #{failure_modes := FM, chaos := #{weights := W}} = P,
    [?assertEqual(V:strategies(), maps:get(recovery_strategies, maps:get(T, FM))) || T <- V:failure_types()],
    ?assertEqual(maps:from_list([{S, 1} || S <- V:scenarios()]), W),
    %% And names the validator does not know stay binaries: no atom is made.
    Unknown = <<"zz_not_an_atom_", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
    Doc2 = <<?PREFIX "<urn:p> a res:ResiliencePolicy ; res:failureMode [ res:type res:", Unknown/binary, " ] .\n">>,
    ?assertMatch({error, [#{field := [failure_modes, Unknown]}]}, ?P:parse_turtle(Doc2)),
    ?assertError(badarg, binary_to_existing_atom(Unknown)).

camel(Atom) ->
    lists:append([[string:to_upper(C) | Rest] || [C | Rest] <- string:split(atom_to_list(Atom), "_", all)]).

cycle(L, N) -> lists:sublist(lists:append(lists:duplicate(N, L)), N).

%%% Installing and reading

set_keeps_the_running_policy_on_error_test_() ->
    {setup,
     fun() -> persistent_term:get({autonomic_policy, installed}, undefined) end,
     fun(Saved) ->
             case Saved of
                 undefined -> persistent_term:erase({autonomic_policy, installed});
                 _ -> persistent_term:put({autonomic_policy, installed}, Saved)
             end,
             application:unset_env(autonomic, planner_policy)
     end,
     fun(_) ->
             [?_test(begin
                         {ok, Good} = ?P:set(#{name => <<"good">>, loop => #{interval_ms => 5000}}),
                         #{version := V} = ?P:info(),
                         ?assertEqual(Good, ?P:current()),
                         {error, Problems} = ?P:set(#{name => <<"bad">>, loop => #{interval_ms => 0},
                                                      chaos => #{max_concurrent => 0}}),
                         ?assertEqual(2, length(Problems)),
                         %% Nothing changed.
                         ?assertEqual(Good, ?P:current()),
                         ?assertMatch(#{version := V, source := api, name := <<"good">>}, ?P:info()),
                         ?assertEqual({ok, 5000}, ?P:get([loop, interval_ms])),
                         %% A file that does not load changes nothing either.
                         ?assertMatch({error, _}, ?P:set_file("/nonexistent/policy.ttl")),
                         ?assertEqual(Good, ?P:current()),
                         %% A good file installs, with the next version.
                         {ok, FromFile} = ?P:set_file(example("policy.ttl")),
                         ?assertEqual(FromFile, ?P:current()),
                         ?assertMatch(#{version := V1, source := {file, _}, name := <<"jobs-cluster">>}
                                        when V1 =:= V + 1, ?P:info())
                     end),
              ?_test(begin
                         {ok, P} = ?P:set(#{planner => #{shed_percent => 40}}),
                         ?assertEqual({ok, 40}, ?P:get([planner, shed_percent])),
                         ?assertEqual({error, {unknown_field, [planner, nope]}}, ?P:get([planner, nope])),
                         ?assertEqual({error, {unknown_field, [loop, interval_ms, deeper]}},
                                      ?P:get([loop, interval_ms, deeper])),
                         ?assertEqual({error, {unknown_field, loop}}, ?P:get(loop)),
                         ?assertEqual(fallback, ?P:get([nope], fallback)),
                         ?assertEqual(10000, ?P:get([loop, interval_ms], fallback)),
                         ?assertEqual({ok, P}, ?P:get([])),
                         %% The planner reads its policy from the application environment.
                         ?assertEqual(maps:get(planner, P), ?P:planner_policy()),
                         ?assertEqual({ok, maps:get(planner, P)}, application:get_env(autonomic, planner_policy))
                     end)]
     end}.

format_problems_test() ->
    {error, Ps} = ?P:validate(#{slo => #{availability => 1.5}, name => <<>>}),
    Text = unicode:characters_to_binary(?P:format_problems(Ps)),
    ?assertEqual(<<"  name = <<>>: must be UTF-8 text of 1 to 255 bytes\n"
                   "  slo.availability = 1.5: must be a fraction in [0.5, 1) (or {percent, P} with P in [50, 100))\n">>,
                 Text),
    Located = unicode:characters_to_binary(
                ?P:format_problems([#{field => [], value => <<"x">>, why => <<"bad">>, line => 3, column => 7}])),
    ?assertEqual(<<"  line 3, column 7: policy = <<\"x\">>: bad\n">>, Located).
