%%% @doc EUnit tests of the metrics registry and its Prometheus text rendering.
-module(autonomic_metrics_tests).

-include_lib("eunit/include/eunit.hrl").

metrics_test_() ->
    {setup,
        fun() -> {ok, Apps} = application:ensure_all_started(autonomic), Apps end,
        fun(Apps) -> [application:stop(A) || A <- lists:reverse(Apps)] end,
        [
            fun counters_and_gauges/0,
            fun histogram_buckets_are_cumulative/0,
            fun labels_are_escaped_and_sorted/0,
            fun declarations_are_checked/0,
            fun collectors_never_break_a_scrape/0,
            fun governor_collector_counts_states/0,
            fun undeclared_samples_are_rendered_untyped/0
        ]}.

text() -> iolist_to_binary(autonomic_metrics:render()).

has(Line) ->
    binary:match(text(), Line) =/= nomatch.

counters_and_gauges() ->
    ok = autonomic_metrics:declare(test_requests_total, counter, "Requests."),
    ok = autonomic_metrics:inc(test_requests_total, #{code => 200}),
    ok = autonomic_metrics:inc(test_requests_total, #{code => 200}, 4),
    ok = autonomic_metrics:declare(test_temperature, gauge, "Degrees."),
    ok = autonomic_metrics:set(test_temperature, #{}, 21.5),
    ?assertEqual(5, autonomic_metrics:value(test_requests_total, #{code => 200})),
    ?assert(has(<<"# TYPE test_requests_total counter\n">>)),
    ?assert(has(<<"test_requests_total{code=\"200\"} 5\n">>)),
    ?assert(has(<<"test_temperature 21.5\n">>)).

histogram_buckets_are_cumulative() ->
    ok = autonomic_metrics:declare(test_latency_seconds, {histogram, [0.1, 1, 10]}, "Latency."),
    [ok = autonomic_metrics:observe(test_latency_seconds, #{op => x}, V) || V <- [0.05, 0.1, 0.5, 5, 50]],
    ?assert(has(<<"test_latency_seconds_bucket{le=\"0.1\",op=\"x\"} 2\n">>)),
    ?assert(has(<<"test_latency_seconds_bucket{le=\"1\",op=\"x\"} 3\n">>)),
    ?assert(has(<<"test_latency_seconds_bucket{le=\"10\",op=\"x\"} 4\n">>)),
    ?assert(has(<<"test_latency_seconds_bucket{le=\"+Inf\",op=\"x\"} 5\n">>)),
    ?assert(has(<<"test_latency_seconds_count{op=\"x\"} 5\n">>)),
    ?assert(has(<<"test_latency_seconds_sum{op=\"x\"} 55.65\n">>)),
    ?assertEqual({error, {not_a_histogram, test_temperature}},
                 autonomic_metrics:observe(test_temperature, #{}, 1)).

labels_are_escaped_and_sorted() ->
    ok = autonomic_metrics:declare(test_escape, gauge, "Help with \\ and\nnewline."),
    ok = autonomic_metrics:set(test_escape, #{z => <<"a\"b">>, a => "c\\d\ne"}, 1),
    ?assert(has(<<"test_escape{a=\"c\\\\d\\ne\",z=\"a\\\"b\"} 1\n">>)),
    ?assert(has(<<"# HELP test_escape Help with \\\\ and\\nnewline.\n">>)).

declarations_are_checked() ->
    ok = autonomic_metrics:declare(test_twice, counter, "x"),
    ?assertEqual(ok, autonomic_metrics:declare(test_twice, counter, "x")),
    ?assertEqual({error, {already_declared, test_twice, counter}}, autonomic_metrics:declare(test_twice, gauge, "x")),
    ?assertMatch({error, {bad_metric, _}}, autonomic_metrics:declare('bad name', counter, "x")),
    ?assertMatch({error, {bad_metric, _}}, autonomic_metrics:declare(test_h, {histogram, [2, 1]}, "x")),
    ?assertMatch({error, {bad_metric, _}}, autonomic_metrics:declare(test_h, summary, "x")),
    ?assertMatch({error, {bad_metric, _}}, autonomic_metrics:declare("test_h", counter, "x")).

collectors_never_break_a_scrape() ->
    ok = autonomic_metrics:register_collector(crashy, fun() -> error(boom) end),
    ok = autonomic_metrics:register_collector(garbage, fun() -> not_a_list end),
    ok = autonomic_metrics:register_collector(good, fun() -> [{test_collected, gauge, "C.", [{#{k => v}, 7}]}] end),
    ?assert(has(<<"test_collected{k=\"v\"} 7\n">>)),
    [ok = autonomic_metrics:unregister_collector(C) || C <- [crashy, garbage, good]],
    ?assertNot(has(<<"test_collected">>)).

governor_collector_counts_states() ->
    T = <<"metrics-", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
    #{intervene := Before} = autonomic:tenants_by_state(),
    {ok, intervene, _} = autonomic:transition(T, {signal, cpu, 99}),
    #{intervene := After} = autonomic:tenants_by_state(),
    ?assertEqual(Before + 1, After),
    Line = iolist_to_binary(["autonomic_governor_tenants{state=\"intervene\"} ", integer_to_list(After), "\n"]),
    ?assert(has(Line)),
    ok = autonomic:forget_tenant(T).

undeclared_samples_are_rendered_untyped() ->
    ok = autonomic_metrics:inc(test_never_declared, #{}),
    ?assert(has(<<"# TYPE test_never_declared untyped\ntest_never_declared 1\n">>)).
