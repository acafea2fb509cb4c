%%% @doc EUnit: ingest without the monitor running answers an error instead of crashing the
%%% caller (the rest of ingest is covered by mape_k_node_SUITE with the application running).
-module(mape_k_ingest_tests).

-include_lib("eunit/include/eunit.hrl").

not_running_is_an_error_test() ->
    ?assertEqual(undefined, whereis(mape_k_ingest)),
    ?assertEqual({error, monitor_not_running},
                 mape_k_ingest:ingest(#{tenant => <<"t">>, metric => cpu, value => 1, timestamp => 0})).
