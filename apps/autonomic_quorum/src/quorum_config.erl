%%% @doc The quorum manager's configuration: application `autonomic_quorum' environment keys,
%%% their defaults and their validation. Every key is documented in README.md (Quorum section).
-module(quorum_config).

-export([get/1, defaults/0, validate/0, members/0]).

-compile({no_auto_import, [get/1]}).

-type key() :: atom().

%% @doc Every key with its default (`members' defaults to this node alone).
-spec defaults() -> #{key() => term()}.
defaults() ->
    #{
        %% The initial member set: [Node | {Node, Weight}], the same list on every node.
        members => [node()],
        %% A member down or suspected this long is removed (and restored once back).
        grace_period_ms => 1000,
        %% A removed member must be back this long before it is restored.
        rejoin_after_ms => 1000,
        %% Whether the leader removes lost members and restores returning ones by itself.
        auto_reconfigure => true,
        %% Each phase of a vote waits this long for the members' answers.
        vote_timeout_ms => 1000,
        %% A member's promise to one proposal blocks others this long at most (it ends earlier
        %% when the proposal finishes, is abandoned, or its proposer dies).
        promise_lease_ms => 3000,
        %% The manager re-evaluates at least this often.
        check_interval_ms => 200,
        %% Members and standby nodes not connected are connected to this often (0: never).
        reconnect_interval_ms => 1000,
        %% Whether a node without quorum fences the governor (autonomic:set_fence/1).
        fence => true
    }.

%% @doc The value of `Key' in force.
-spec get(key()) -> term().
get(Key) ->
    case application:get_env(autonomic_quorum, Key) of
        {ok, V} -> V;
        undefined -> maps:get(Key, defaults())
    end.

%% @doc The configured members and their weights.
-spec members() -> {ok, quorum_rules:weights()} | {error, term()}.
members() ->
    quorum_rules:parse_members(get(members)).

%% @doc Checks every key; `{error, {invalid_config, Key, Value}}' names the first bad one.
-spec validate() -> ok | {error, {invalid_config, key(), term()}}.
validate() ->
    Bad = [{K, V} || K <- lists:sort(maps:keys(defaults())), V <- [get(K)], not valid(K, V)] ++
          [{promise_lease_ms, get(promise_lease_ms)} || lease_too_short()],
    case Bad of
        [] -> ok;
        [{K, V} | _] -> {error, {invalid_config, K, V}}
    end.

valid(members, V) -> element(1, quorum_rules:parse_members(V)) =:= ok;
valid(K, V) when K =:= grace_period_ms; K =:= rejoin_after_ms; K =:= reconnect_interval_ms -> is_integer(V) andalso V >= 0;
valid(K, V) when K =:= vote_timeout_ms; K =:= promise_lease_ms; K =:= check_interval_ms ->
    is_integer(V) andalso V > 0;
valid(K, V) when K =:= auto_reconfigure; K =:= fence -> is_boolean(V);
valid(_, _) -> false.

%% A promise must outlive the proposal it protects (two vote phases), or a second proposer could
%% take over a proposal that is still running.
lease_too_short() ->
    Lease = get(promise_lease_ms),
    Vote = get(vote_timeout_ms),
    is_integer(Lease) andalso is_integer(Vote) andalso Lease =< 2 * Vote.
