%%% @doc EUnit tests of ingest validation, normalization and deduplication ids (`mape_k_signal').
-module(mape_k_signal_tests).

-include_lib("eunit/include/eunit.hrl").

-define(NOW, 1700000000000).
-define(OPTS, #{now_ms => ?NOW, max_future_ms => 3600000}).

metrics() -> mape_k_signal:default_metrics().

ok(Raw) -> mape_k_signal:validate(Raw, metrics(), ?OPTS).

valid() -> #{tenant => <<"acme">>, metric => cpu, value => 42, timestamp => ?NOW}.

valid_signal_is_normalized_test() ->
    ?assertMatch({ok, #{tenant := <<"acme">>, metric := cpu, value := 42, normalized := 42.0}}, ok(valid())),
    ?assertMatch({ok, #{metric := error_rate, normalized := 25.0}}, ok((valid())#{metric => error_rate, value => 0.25})),
    ?assertMatch({ok, #{metric := latency_ms, normalized := 50.0}}, ok((valid())#{metric => latency_ms, value => 500})),
    %% Within bounds but past the scale: clamped to 100.
    ?assertMatch({ok, #{normalized := 100.0}}, ok((valid())#{metric => latency_ms, value => 5000})),
    %% Binary metric names match the known ones; extra keys are ignored.
    ?assertMatch({ok, #{metric := memory}}, ok((valid())#{metric => <<"memory">>, source => <<"agent-7">>})).

every_invalid_field_has_its_reason_test() ->
    V = valid(),
    ?assertEqual({error, not_a_map}, ok([{tenant, <<"acme">>}])),
    [?assertEqual({error, {missing_field, F}}, ok(maps:remove(F, V))) || F <- [tenant, metric, value, timestamp]],
    ?assertEqual({error, {invalid_tenant, <<>>}}, ok(V#{tenant => <<>>})),
    Long = binary:copy(<<"x">>, 257),
    ?assertEqual({error, {invalid_tenant, Long}}, ok(V#{tenant => Long})),
    ?assertMatch({ok, _}, ok(V#{tenant => binary:copy(<<"x">>, 256)})),
    ?assertEqual({error, {invalid_tenant, "acme"}}, ok(V#{tenant => "acme"})),
    ?assertEqual({error, {unknown_metric, bogus}}, ok(V#{metric => bogus})),
    ?assertEqual({error, {unknown_metric, <<"bogus">>}}, ok(V#{metric => <<"bogus">>})),
    ?assertEqual({error, {unknown_metric, 42}}, ok(V#{metric => 42})),
    ?assertEqual({error, {invalid_value, <<"42">>}}, ok(V#{value => <<"42">>})),
    ?assertEqual({error, {value_out_of_bounds, 101, {0, 100}}}, ok(V#{value => 101})),
    ?assertEqual({error, {value_out_of_bounds, -0.5, {0, 100}}}, ok(V#{value => -0.5})),
    ?assertEqual({error, {value_out_of_bounds, 1.5, {0, 1}}}, ok(V#{metric => error_rate, value => 1.5})),
    ?assertEqual({error, {invalid_timestamp, 1.5}}, ok(V#{timestamp => 1.5})),
    ?assertEqual({error, {invalid_timestamp, -1}}, ok(V#{timestamp => -1})),
    ?assertEqual({error, {invalid_timestamp, <<"now">>}}, ok(V#{timestamp => <<"now">>})),
    ?assertEqual({error, {timestamp_in_future, ?NOW + 3600001}}, ok(V#{timestamp => ?NOW + 3600001})),
    ?assertMatch({ok, _}, ok(V#{timestamp => ?NOW + 3600000})),
    %% Old timestamps are fine (late delivery).
    ?assertMatch({ok, _}, ok(V#{timestamp => 0})).

first_problem_is_reported_test() ->
    ?assertEqual({error, {invalid_tenant, <<>>}}, ok(#{tenant => <<>>, metric => bogus, value => x, timestamp => x})),
    ?assertEqual({error, {unknown_metric, bogus}}, ok(#{tenant => <<"t">>, metric => bogus, value => x, timestamp => x})).

reason_labels_test() ->
    ?assertEqual(not_a_map, mape_k_signal:reason_label(not_a_map)),
    ?assertEqual(value_out_of_bounds, mape_k_signal:reason_label({value_out_of_bounds, 1, {0, 0.5}})).

id_is_deterministic_sha256_test() ->
    {ok, S} = ok(valid()),
    Id = mape_k_signal:id(S, 5000),
    ?assertEqual(32, byte_size(Id)),
    %% Fixed across nodes, runs and OTP versions: a canonical encoding, not term_to_binary.
    Expected = crypto:hash(sha256, <<"autonomic-signal-v1", 4:16, "acme", 3:16, "cpu", 42.0:64/float,
                                     (?NOW div 5000):64/signed>>),
    ?assertEqual(Expected, Id),
    ?assertEqual(Id, mape_k_signal:id(S#{value => 42.0}, 5000)),
    ?assertEqual(Id, mape_k_signal:id(S#{metric => <<"cpu">>}, 5000)).

id_windows_test() ->
    {ok, S} = ok(valid()),
    Base = (?NOW div 5000) * 5000,
    Id = fun(Ts) -> mape_k_signal:id(S#{timestamp => Ts}, 5000) end,
    ?assertEqual(Id(Base), Id(Base + 4999)),
    ?assertNotEqual(Id(Base), Id(Base + 5000)),
    ?assertNotEqual(Id(Base), mape_k_signal:id(S#{value => 43}, 5000)),
    ?assertNotEqual(Id(Base), mape_k_signal:id(S#{tenant => <<"other">>}, 5000)).

metric_overrides_test() ->
    {ok, M} = mape_k_signal:metrics(#{gc_pause_ms => #{bounds => {0, 60000}, scale => {0, 200}}}),
    ?assertMatch({ok, #{normalized := 50.0}},
                 mape_k_signal:validate((valid())#{metric => gc_pause_ms, value => 100}, M, ?OPTS)),
    ?assertMatch({error, {bad_metric_spec, x, _}}, mape_k_signal:metrics(#{x => #{bounds => {1, 0}, scale => {0, 1}}})),
    ?assertMatch({error, _}, mape_k_signal:metrics(not_a_map)).
