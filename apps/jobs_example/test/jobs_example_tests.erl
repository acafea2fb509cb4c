%%% @doc The workload's pure parts: the audit, the ack log reader.
-module(jobs_example_tests).
-include_lib("eunit/include/eunit.hrl").

audit_counts_every_acknowledged_job_not_done_as_lost_test() ->
    R = jobs_example:audit([<<"a">>, <<"b">>, <<"c">>, <<"b">>], [<<"a">>, <<"c">>, <<"x">>]),
    ?assertEqual(#{acked => 3, completed => 2, lost => 1, lost_ids => [<<"b">>]}, R).

audit_of_nothing_test() ->
    ?assertEqual(#{acked => 0, completed => 0, lost => 0, lost_ids => []}, jobs_example:audit([], [<<"a">>])).

ack_log_ignores_a_torn_last_line_test() ->
    Path = filename:join("/tmp", "jobs_ack_" ++ os:getpid() ++ ".log"),
    ok = file:write_file(Path, <<"n/1/1\nn/1/2\nn/1/">>),
    try
        ?assertEqual({ok, [<<"n/1/1">>, <<"n/1/2">>]}, jobs_example:read_ack_log(Path))
    after
        file:delete(Path)
    end.

ack_log_missing_is_empty_test() ->
    ?assertEqual({ok, []}, jobs_example:read_ack_log("/nonexistent/jobs_acked.log")).

fault_hook_rejects_bad_faults_test() ->
    ?assertEqual({error, {invalid_fault, #{latency_ms => -1}}}, jobs_store:set_fault(#{latency_ms => -1})),
    ?assertEqual({error, {invalid_fault, #{bogus => 1}}}, jobs_store:set_fault(#{bogus => 1})),
    ?assertEqual({error, {invalid_fault, x}}, jobs_store:set_fault(x)),
    ?assertEqual(none, jobs_store:fault()),
    ok = jobs_store:set_fault(#{error => true}),
    ?assertEqual(#{error => true}, jobs_store:fault()),
    ok = jobs_store:clear_fault(),
    ?assertEqual(none, jobs_store:fault()).

probe_rejects_a_bad_deadline_test() ->
    ?assertEqual({error, {invalid_deadline, 0}}, jobs_example:probe(0)).
