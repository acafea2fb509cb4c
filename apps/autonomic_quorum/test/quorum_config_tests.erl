%%% @doc EUnit tests of the quorum manager's configuration checks (`quorum_config').
-module(quorum_config_tests).

-include_lib("eunit/include/eunit.hrl").

with_env(Settings, Fun) ->
    Old = [{K, application:get_env(autonomic_quorum, K)} || {K, _} <- Settings],
    [ok = application:set_env(autonomic_quorum, K, V) || {K, V} <- Settings],
    try Fun()
    after
        [case O of
             {ok, V} -> application:set_env(autonomic_quorum, K, V);
             undefined -> application:unset_env(autonomic_quorum, K)
         end || {K, O} <- Old]
    end.

defaults_are_valid_test() ->
    ?assertEqual(ok, quorum_config:validate()),
    ?assertEqual(1000, quorum_config:get(grace_period_ms)),
    ?assertEqual({ok, #{node() => 1}}, quorum_config:members()).

bad_values_are_named_test_() ->
    Bad = [{members, []}, {members, [{'a@h', 0}]}, {members, [{'a@h', -1}]}, {members, ['a@h', 'a@h']},
           {members, [nohost]}, {members, 'a@h'}, {grace_period_ms, -1}, {grace_period_ms, 1.5},
           {rejoin_after_ms, x}, {vote_timeout_ms, 0}, {promise_lease_ms, 0}, {check_interval_ms, 0},
           {auto_reconfigure, yes}, {fence, 1}],
    [?_assertEqual({error, {invalid_config, K, V}}, with_env([{K, V}], fun quorum_config:validate/0)) || {K, V} <- Bad].

lease_must_outlive_a_proposal_test() ->
    ?assertEqual({error, {invalid_config, promise_lease_ms, 2000}},
                 with_env([{vote_timeout_ms, 1000}, {promise_lease_ms, 2000}], fun quorum_config:validate/0)),
    ?assertEqual(ok, with_env([{vote_timeout_ms, 1000}, {promise_lease_ms, 2001}], fun quorum_config:validate/0)).

good_values_pass_test() ->
    ?assertEqual(ok, with_env([{members, ['a@h', {'b@h', 3}]}, {grace_period_ms, 0}, {auto_reconfigure, false},
                               {fence, false}], fun quorum_config:validate/0)).
