%%% @doc The Plan phase of MAPE-K: the cheapest safe recovery plan for an analysis.
%%%
%%% Plans come from the planner C-node (a hidden node in Rust, `native/autonomic_planner',
%%% supervised by `autonomic_planner_cnode'), asked with
%%% `gen_server:call({planner, PlannerNode}, {plan, Input}, Timeout)'. When the C-node is not
%%% ready, does not answer in time (default 2 s), or answers an error other than a rejected
%%% input, the built-in Erlang planner ({@link autonomic_planner_builtin}) answers instead: the
%%% same model, the same plan, with `planner => builtin'. Every fallback is counted in
%%% `autonomic_planner_fallbacks_total{reason}'.
%%%
%%% ```
%%% 1> autonomic_planner:plan(#{failure_type => node_down, confidence => 0.9,
%%%                              affected_nodes => ['b@host']},
%%%                            #{topology => #{nodes => [#{name => 'a@host', headroom => 0.5},
%%%                                                      #{name => 'b@host', up => false},
%%%                                                      #{name => 'c@host', headroom => 0.5}]}}).
%%% {ok,#{strategy => quorum_reconfiguration,
%%%       steps => [#{action => remove_node,node => 'b@host'}],
%%%       rollback => [#{action => add_node,node => 'b@host'}],
%%%       estimated_ms => 10000, confidence => 0.45, planner => cnode,
%%%       cost => #{downtime => 0.03333333333333333,resource => 0.0,risk => 0.55,
%%%                 total => 0.5833333333333334}}}
%%% '''
%%%
%%% The input's shape (analysis, topology, effectiveness, policy), the plan's shape and the cost
%%% model are described in README.md ("Planner").
-module(autonomic_planner).

-export([plan/1, plan/2, input/2, cnode_info/0, cnode_stats/0, await_cnode/1]).

-export_type([analysis/0, options/0]).

-type analysis() :: #{failure_type := atom() | binary(), confidence := number(),
                      root_cause => atom() | binary(), affected_nodes => [node()],
                      affected_services => [atom() | binary()], _ => _}.
-type options() :: #{topology => map(), effectiveness => map(), policy => map(),
                     timeout => timeout(), planner => auto | cnode | builtin}.

-define(DEFAULT_TIMEOUT, 2000).
-define(LOG, #{domain => [autonomic, planner]}).

%% @doc {@link plan/2} with the default options.
-spec plan(analysis()) -> {ok, autonomic_planner_builtin:plan()} | {error, term()}.
plan(Analysis) ->
    plan(Analysis, #{}).

%% @doc Plans the recovery of `Analysis'. Options:
%% <ul>
%% <li>`topology': the cluster (default: this node and the nodes it sees, with unknown
%%     headroom and no services);</li>
%% <li>`effectiveness': per strategy `#{successes, failures, mean_recovery_ms}' (default: from
%%     the knowledge base, `autonomic_kb:effectiveness(all)', when that module is loaded, else
%%     none);</li>
%% <li>`policy': merged over the built-in defaults (default: the application's
%%     `planner_policy');</li>
%% <li>`timeout': how long to wait for the C-node, in ms (default 2,000);</li>
%% <li>`planner': `auto' (the C-node, else the built-in planner), `cnode' (the C-node only: its
%%     failures are returned as `{error, {cnode, Reason}}', for tests and benchmarks) or
%%     `builtin'.</li>
%% </ul>
%% A rejected input is `{error, {invalid_input, Detail}}' from either planner.
-spec plan(analysis(), options()) -> {ok, autonomic_planner_builtin:plan()} | {error, term()}.
plan(Analysis, Opts) when is_map(Opts) ->
    Input = input(Analysis, Opts),
    case maps:get(planner, Opts, auto) of
        builtin ->
            builtin(Input);
        Mode when Mode =:= auto; Mode =:= cnode ->
            case ask_cnode(Input, maps:get(timeout, Opts, ?DEFAULT_TIMEOUT)) of
                {ok, _} = Ok ->
                    count(cnode),
                    Ok;
                {error, {invalid_input, _}} = Invalid ->
                    %% The built-in planner would reject it the same way.
                    Invalid;
                {fallback, Why} when Mode =:= cnode ->
                    {error, {cnode, Why}};
                {fallback, Why} ->
                    fallback(Why),
                    builtin(Input)
            end
    end.

%% @doc The planner's input for `Analysis' with these options (see {@link plan/2}).
-spec input(analysis(), options()) -> autonomic_planner_builtin:input().
input(Analysis, Opts) ->
    #{analysis => Analysis,
      topology => maps:get(topology, Opts, default_topology()),
      effectiveness => case maps:find(effectiveness, Opts) of
                           {ok, E} -> E;
                           error -> kb_effectiveness()
                       end,
      policy => maps:get(policy, Opts, application:get_env(autonomic, planner_policy, #{}))}.

%% @doc The C-node's state (see {@link autonomic_planner_cnode:info/0}).
-spec cnode_info() -> #{atom() => term()}.
cnode_info() ->
    autonomic_planner_cnode:info().

%% @doc The C-node's own counters (calls, plans, errors, dropped messages, ...).
-spec cnode_stats() -> {ok, map()} | {error, term()}.
cnode_stats() ->
    case autonomic_planner_cnode:ready_node() of
        {ok, Node} ->
            try gen_server:call({planner, Node}, stats, ?DEFAULT_TIMEOUT)
            catch exit:Reason -> {error, Reason}
            end;
        Error ->
            Error
    end.

%% @doc Waits up to `Timeout' ms for the C-node to be ready.
-spec await_cnode(non_neg_integer()) -> {ok, node()} | {error, term()}.
await_cnode(Timeout) ->
    autonomic_planner_cnode:await_ready(Timeout).

%%% Internals

ask_cnode(Input, Timeout) ->
    case autonomic_planner_cnode:ready_node() of
        {ok, Node} ->
            try gen_server:call({planner, Node}, {plan, Input}, Timeout) of
                {ok, #{planner := cnode}} = Ok -> Ok;
                {error, {invalid_input, _}} = Invalid -> Invalid;
                {error, overloaded} -> {fallback, overloaded};
                {error, {too_large, _, _}} -> {fallback, too_large};
                {error, {bad_term, _}} -> {fallback, bad_term};
                {error, internal_error} -> {fallback, internal_error};
                Other ->
                    logger:warning("planner C-node answered ~0P", [Other, 20], ?LOG),
                    {fallback, bad_reply}
            catch
                exit:{timeout, _} -> {fallback, timeout};
                exit:{{nodedown, _}, _} -> {fallback, nodedown};
                exit:{noproc, _} -> {fallback, noproc};
                exit:{noconnection, _} -> {fallback, nodedown};
                exit:_ -> {fallback, exit}
            end;
        {error, {disabled, _}} ->
            {fallback, disabled};
        {error, _} ->
            {fallback, cnode_down}
    end.

builtin(Input) ->
    case autonomic_planner_builtin:plan(Input) of
        {ok, _} = Ok ->
            count(builtin),
            Ok;
        Error ->
            Error
    end.

default_topology() ->
    #{nodes => [#{name => N} || N <- lists:usort([node() | nodes()])]}.

%% The knowledge base's figures, when its module is there (it is optional for the planner).
kb_effectiveness() ->
    Kb = autonomic_kb,
    case code:ensure_loaded(Kb) of
        {module, Kb} ->
            try Kb:effectiveness(all) of
                M when is_map(M) -> M;
                _ -> #{}
            catch
                _:_ -> #{}
            end;
        _ ->
            #{}
    end.

%% Metrics are best effort: planning works without the application's metrics table.
count(Planner) ->
    catch autonomic_metrics:inc(autonomic_planner_plans_total, #{planner => Planner}),
    ok.

fallback(Why) ->
    catch autonomic_metrics:inc(autonomic_planner_fallbacks_total, #{reason => Why}),
    ok.
