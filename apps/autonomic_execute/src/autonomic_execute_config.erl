%%% @doc The Execute toolkit's configuration: application `autonomic_execute' environment keys,
%%% their defaults and their validation. Every key is documented in README.md (Execute section).
%%% Keys whose values have structure (rules, SKUs, breakers, backends) are checked by the module
%%% that uses them, so that the configuration and the API accept exactly the same values.
-module(autonomic_execute_config).

-export([get/1, defaults/0, validate/0, table_options/0]).

-compile({no_auto_import, [get/1]}).

-type key() :: atom().

%% @doc Every key with its default.
-spec defaults() -> #{key() => term()}.
defaults() ->
    #{
        %% Actuator
        action_timeout_ms => 30000,
        escalate_failed_actions => true,
        %% supervisor_controller
        restart_cooldown_ms => 10000,
        protected_apps => [],
        protected_supervisors => [],
        %% Escalation
        escalation_webhook => none,
        escalation_timeout_ms => 5000,
        %% Graceful degradation
        degrade_rules => [],
        degrade_interval_ms => 1000,
        degrade_calm_ms => 30000,
        %% Entitlements
        skus => #{},
        entitlement_check_ms => 60000,
        %% Installed at start
        breakers => #{},
        %% The hot tables (breakers, features, token buckets) tuned for many cores reading at once
        read_concurrency => false,
        backends => #{}
    }.

%% @doc The value of `Key' in force.
-spec get(key()) -> term().
get(Key) ->
    case application:get_env(autonomic_execute, Key) of
        {ok, V} -> V;
        undefined -> maps:get(Key, defaults())
    end.

%% @doc Checks every key; `{error, {invalid_config, Key, Value}}' names the first bad one.
-spec validate() -> ok | {error, {invalid_config, key(), term()}}.
validate() ->
    Bad = [{K, V} || K <- lists:sort(maps:keys(defaults())), V <- [get(K)], not valid(K, V)],
    case Bad of
        [] -> ok;
        [{K, V} | _] -> {error, {invalid_config, K, V}}
    end.

%% @doc ETS options of the tables read on the hot paths (`autonomic_breaker:ask/1',
%% `autonomic:feature_enabled/1', `autonomic_bucket:take/1'). Their writes are rare, so never
%% `write_concurrency'. By default a plain table: its one lock is the cheapest for a reader (on
%% the machine this was measured on, about three times the reads per second of one caller with
%% `read_concurrency'); with the key `read_concurrency' set, readers use per-scheduler lock
%% groups, which makes each read dearer and scales on nodes where many cores read at once.
-spec table_options() -> [{read_concurrency, true}].
table_options() ->
    [{read_concurrency, true} || get(read_concurrency)].

valid(K, V) when K =:= action_timeout_ms; K =:= escalation_timeout_ms; K =:= degrade_interval_ms;
                 K =:= entitlement_check_ms ->
    is_integer(V) andalso V > 0;
valid(K, V) when K =:= restart_cooldown_ms; K =:= degrade_calm_ms ->
    is_integer(V) andalso V >= 0;
valid(K, V) when K =:= escalate_failed_actions; K =:= read_concurrency -> is_boolean(V);
valid(K, V) when K =:= protected_apps; K =:= protected_supervisors ->
    is_list(V) andalso lists:all(fun is_atom/1, V);
valid(escalation_webhook, V) -> V =:= none orelse autonomic_escalate:valid_url(V);
valid(degrade_rules, V) -> autonomic_degrade_rules:validate(V) =:= ok;
valid(skus, V) -> element(1, autonomic_entitlements:merge_skus(V)) =:= ok;
valid(breakers, V) ->
    is_map(V) andalso lists:all(fun({N, O}) -> autonomic_breaker:validate(N, O) =:= ok end, maps:to_list(V));
valid(backends, V) ->
    is_map(V) andalso lists:all(fun({N, B}) -> autonomic_backends:validate(N, B) =:= ok end, maps:to_list(V));
valid(_, _) -> false.
