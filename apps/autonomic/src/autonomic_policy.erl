%%% @doc The declarative resilience policy: what the self-healing loop may do, how fast, under
%%% which safety gates, and the chaos schedule that tests it. One normalized Erlang map, loaded
%%% from Erlang terms (`policy.config', the application environment) or from RDF Turtle (the
%%% seed's `res:' vocabulary, parsed in Rust), validated by one validator
%%% ({@link autonomic_policy_validate}) with every problem listed, and kept where reads cost
%%% nothing (`persistent_term').
%%%
%%% == The policy ==
%%% ```
%%% #{name => binary(),                          % <<"default">>
%%%   target_system => binary() | undefined,     % undefined
%%%   slo => #{availability, mttd_ms, mttr_ms, max_degradation, recovery_success, window_ms},
%%%   failure_modes => #{Type => #{recovery_strategies => [Strategy], detection_ms,
%%%                                recovery_ms, severity}},
%%%   planner => #{allowed, slo_budget_ms, blast_radius_limit, [quorum_size],
%%%                default_recovery_ms, step_ms, shed_percent, throttle_percent,
%%%                degrade_impact},             % exactly the planner's planner_policy
%%%   gates => #{error_budget, blast_radius, cooldown_ms, capacity_headroom,
%%%              max_incident_rate, max_consecutive_failures},
%%%   loop => #{interval_ms, max_cycle_ms, min_confidence, lock_ttl_ms},
%%%   chaos => #{enabled, interval_ms, duration_ms, max_concurrent, pause_on_alert, safe_mode,
%%%              require_approval, seed, weights => #{Scenario => Weight}}}
%%% '''
%%% Every key has a default, so `#{}' is a valid policy; a policy given is merged over the
%%% defaults key by key (a failure mode given is merged over that type's default mode; `weights'
%%% replaces the default weights; `planner.default_recovery_ms' is merged over the planner's).
%%% README.md ("Policy") has the table of every key, its default and its constraints.
%%% `planner.allowed' is derived from the failure modes' `recovery_strategies'; `quorum_size' is
%%% absent unless set (the planner then takes a majority of the topology's nodes).
%%%
%%% == Problems ==
%%% `#{field => [slo, availability], value => 1.5, why => <<"must be a fraction in [0.5, 1) ...">>}',
%%% plus `line' and `column' for a problem found at a place in a file (a syntax error). Every
%%% problem is listed; {@link format_problems/1} renders them for people.
%%%
%%% == Where it lives ==
%%% The installed policy is in `persistent_term': {@link current/0} and {@link get/1} are a
%%% lookup, free of messages and copies. Installing ({@link set/1}, {@link set_file/1},
%%% {@link reload/0}, and the application at start) validates first and changes nothing on a
%%% problem: the running policy stays in force. Installs on a node are serialized; each one bumps
%%% the version, sets the application environment `planner_policy' (which
%%% `autonomic_planner' reads) to the policy's `planner' section, publishes the event
%%% `policy_changed' (`policy_rejected' for a refused one) and counts
%%% `autonomic_policy_changes_total{result}'. The policy is per node: to change it cluster-wide,
%%% call the same function on every node (`erpc:multicall(Nodes, autonomic_policy, reload, [])').
-module(autonomic_policy).

-export([validate/1, defaults/0, load_file/1, load_terms/1, load_turtle/1, parse_turtle/1]).
-export([current/0, info/0, get/1, get/2, planner_policy/0]).
-export([set/1, set_file/1, reload/0, format_problems/1]).
%% For autonomic_app.
-export([configured/0, install/2]).

-export_type([policy/0, problem/0, source/0]).

-include_lib("kernel/include/file.hrl").

%% get/1 and get/2 read the policy, not the process dictionary.
-compile({no_auto_import, [get/1]}).

-type policy() :: autonomic_policy_validate:policy().
-type problem() :: autonomic_policy_validate:problem().
-type source() :: default | inline | api | {file, file:filename_all()}.

-define(KEY, {?MODULE, installed}).
-define(LOG, #{domain => [autonomic, policy]}).
%% Largest Turtle file read (the NIF bounds its input the same way).
-define(MAX_TURTLE_BYTES, 1048576).
%% Largest terms file read.
-define(MAX_TERMS_BYTES, 1048576).

%%% Reading and validating (no state changes)

%% @doc Validates and normalizes a policy given as terms. See {@link autonomic_policy_validate}.
-spec validate(term()) -> {ok, policy()} | {error, [problem()]}.
validate(Term) ->
    autonomic_policy_validate:validate(Term).

%% @doc The default policy (what `#{}' normalizes to).
-spec defaults() -> policy().
defaults() ->
    autonomic_policy_validate:defaults().

%% @doc Reads and validates a policy file: Erlang terms when its name ends in `.config', Turtle
%% when it ends in `.ttl'. Installs nothing.
-spec load_file(file:filename_all()) -> {ok, policy()} | {error, [problem()]}.
load_file(Path) ->
    case string:lowercase(filename:extension(Path)) of
        Ext when Ext =:= ".config"; Ext =:= <<".config">> -> load_terms(Path);
        Ext when Ext =:= ".ttl"; Ext =:= <<".ttl">> -> load_turtle(Path);
        _ -> {error, [file_problem(Path, <<"unknown kind of policy file: its name must end in "
                                           ".config (Erlang terms) or .ttl (Turtle)">>)]}
    end.

%% @doc Reads a policy in Erlang terms (`file:consult/1' format: one term, the policy map,
%% followed by a full stop) and validates it.
-spec load_terms(file:filename_all()) -> {ok, policy()} | {error, [problem()]}.
load_terms(Path) ->
    case size_ok(Path, ?MAX_TERMS_BYTES) of
        ok ->
            case file:consult(Path) of
                {ok, [Term]} ->
                    validate(Term);
                {ok, Terms} ->
                    {error, [file_problem(Path, iolist_to_binary(io_lib:format(
                                "the file holds ~b terms: a policy file holds one, the policy map",
                                [length(Terms)])))]};
                {error, {Location, Mod, Reason}} ->
                    Why = iolist_to_binary(["syntax error: ", Mod:format_error(Reason)]),
                    {error, [maps:merge(file_problem(Path, Why), location(Location))]};
                {error, Posix} ->
                    {error, [file_problem(Path, read_error(Posix))]}
            end;
        {error, Problem} ->
            {error, [Problem]}
    end.

%% @doc Reads a policy in Turtle (the `res:' vocabulary; see README.md) and validates it.
-spec load_turtle(file:filename_all()) -> {ok, policy()} | {error, [problem()]}.
load_turtle(Path) ->
    case size_ok(Path, ?MAX_TURTLE_BYTES) of
        ok ->
            case file:read_file(Path) of
                {ok, Bin} -> parse_turtle(Bin);
                {error, Posix} -> {error, [file_problem(Path, read_error(Posix))]}
            end;
        {error, Problem} ->
            {error, [Problem]}
    end.

%% @doc Maps a Turtle document (in memory) to the policy's terms in Rust and validates them.
%% The problems are the import's (syntax with line and column, vocabulary, literals) followed
%% by the validator's.
-spec parse_turtle(binary()) -> {ok, policy()} | {error, [problem()]}.
parse_turtle(Bin) when is_binary(Bin), byte_size(Bin) =< ?MAX_TURTLE_BYTES ->
    %% The import names things with existing atoms only: the validator's module holds every
    %% name it knows, so it must be loaded first.
    {module, _} = code:ensure_loaded(autonomic_policy_validate),
    case autonomic_nif:policy_from_turtle(Bin) of
        {ok, Terms, ImportProblems} ->
            case {validate(Terms), ImportProblems} of
                {{ok, Policy}, []} -> {ok, Policy};
                {{ok, _}, _} -> {error, ImportProblems};
                {{error, Problems}, _} -> {error, ImportProblems ++ Problems}
            end;
        {error, Problems} ->
            {error, Problems}
    end;
parse_turtle(Bin) when is_binary(Bin) ->
    {error, [#{field => [], value => byte_size(Bin),
               why => iolist_to_binary(io_lib:format("the document is ~b bytes; at most ~b are read",
                                                     [byte_size(Bin), ?MAX_TURTLE_BYTES]))}]};
parse_turtle(Other) ->
    {error, [#{field => [], value => Other, why => <<"a Turtle document is a binary">>}]}.

%%% The installed policy (cheap reads)

%% @doc The policy in force (the default policy before any is installed).
-spec current() -> policy().
current() ->
    case persistent_term:get(?KEY, undefined) of
        #{policy := Policy} -> Policy;
        undefined -> defaults()
    end.

%% @doc What is installed: version (1 for the first install on this node), where it came
%% from, when (system time, ms) and its name.
-spec info() -> #{version := non_neg_integer(), source := source(),
                  installed_at := integer() | undefined, name := binary()}.
info() ->
    case persistent_term:get(?KEY, undefined) of
        #{policy := #{name := Name}, version := V, source := S, installed_at := At} ->
            #{version => V, source => S, installed_at => At, name => Name};
        undefined ->
            #{version => 0, source => default, installed_at => undefined, name => <<"default">>}
    end.

%% @doc The value at a path of the policy in force: `get([loop, interval_ms])'.
-spec get([term()]) -> {ok, term()} | {error, {unknown_field, term()}}.
get(Path) when is_list(Path) ->
    walk(current(), Path, Path);
get(Path) ->
    {error, {unknown_field, Path}}.

%% @doc The value at a path, or `Default' when the policy has no such field.
-spec get([term()], term()) -> term().
get(Path, Default) ->
    case get(Path) of
        {ok, V} -> V;
        {error, _} -> Default
    end.

%% @doc The planner's policy (`planner_policy' for `autonomic_planner:plan/2').
-spec planner_policy() -> map().
planner_policy() ->
    maps:get(planner, current()).

walk(V, [], _) -> {ok, V};
walk(M, [K | Rest], Path) when is_map(M) ->
    case maps:find(K, M) of
        {ok, V} -> walk(V, Rest, Path);
        error -> {error, {unknown_field, Path}}
    end;
walk(_, _, Path) -> {error, {unknown_field, Path}}.

%%% Installing

%% @doc Validates `Term' and installs it; on a problem the running policy stays in force.
-spec set(term()) -> {ok, policy()} | {error, [problem()]}.
set(Term) ->
    checked(validate(Term), api).

%% @doc Loads a policy file ({@link load_file/1}) and installs it.
-spec set_file(file:filename_all()) -> {ok, policy()} | {error, [problem()]}.
set_file(Path) ->
    checked(load_file(Path), {file, Path}).

%% @doc Loads the configured policy again (application environment `policy': a file is read
%% anew) and installs it: how to apply an edited policy file at run time.
-spec reload() -> {ok, policy()} | {error, [problem()]}.
reload() ->
    case configured() of
        {ok, Policy, Source} ->
            ok = install(Policy, Source),
            {ok, Policy};
        {error, Problems} ->
            rejected(configured_source(), Problems),
            {error, Problems}
    end.

%% @doc The configured policy: application environment `policy', a map (the policy itself) or
%% a file name (`.config' or `.ttl'); unset, the default policy. Validated, not installed.
-spec configured() -> {ok, policy(), source()} | {error, [problem()]}.
configured() ->
    case application:get_env(autonomic, policy) of
        undefined ->
            {ok, defaults(), default};
        {ok, Map} when is_map(Map) ->
            with_source(validate(Map), inline);
        {ok, Path} when is_binary(Path); is_list(Path) ->
            with_source(load_file(Path), {file, Path});
        {ok, Other} ->
            {error, [#{field => [], value => Other,
                       why => <<"the application environment `policy' must be a policy map or "
                                "the name of a policy file">>}]}
    end.

with_source({ok, Policy}, Source) -> {ok, Policy, Source};
with_source({error, _} = Error, _) -> Error.

configured_source() ->
    case application:get_env(autonomic, policy) of
        {ok, Map} when is_map(Map) -> inline;
        {ok, Path} when is_binary(Path); is_list(Path) -> {file, Path};
        _ -> default
    end.

checked({ok, Policy}, Source) ->
    ok = install(Policy, Source),
    {ok, Policy};
checked({error, Problems}, Source) ->
    rejected(Source, Problems),
    {error, Problems}.

%% @doc Installs a policy that {@link validate/1} returned. Serialized on the node; the
%% application calls it once at start with the configured policy.
-spec install(policy(), source()) -> ok.
install(Policy, Source) ->
    global:trans({{?MODULE, install}, self()}, fun() -> do_install(Policy, Source) end, [node()], infinity).

do_install(Policy, Source) ->
    Old = persistent_term:get(?KEY, undefined),
    {Version, Previous} = case Old of
                              #{version := V, policy := P} -> {V + 1, P};
                              undefined -> {1, defaults()}
                          end,
    Changed = [K || K <- autonomic_policy_validate:top_keys(),
                    maps:get(K, Policy) =/= maps:get(K, Previous)],
    Planner = maps:get(planner, Policy),
    warn_if_planner_policy_replaced(Old),
    ok = persistent_term:put(?KEY, #{policy => Policy, version => Version, source => Source,
                                     installed_at => erlang:system_time(millisecond),
                                     planner => Planner}),
    ok = application:set_env(autonomic, planner_policy, Planner),
    metrics(installed, Version),
    publish(policy_changed, #{name => maps:get(name, Policy), version => Version,
                              source => Source, changed => Changed}),
    logger:notice("resilience policy ~ts installed (version ~b, from ~0p); changed: ~0p",
                  [maps:get(name, Policy), Version, Source, Changed], ?LOG),
    ok.

%% `planner_policy' set by hand (sys.config) is replaced by the policy's planner section: say so
%% once, at the first install, if it held something other than what this module put there.
warn_if_planner_policy_replaced(Old) ->
    Ours = case Old of
               #{planner := P} -> P;
               undefined -> #{}
           end,
    case application:get_env(autonomic, planner_policy) of
        {ok, Env} when Env =/= #{}, Env =/= Ours ->
            logger:warning("the application environment planner_policy (~0p) is replaced by the "
                           "resilience policy's planner section: set the planner there", [Env], ?LOG);
        _ ->
            ok
    end.

rejected(Source, Problems) ->
    metrics(rejected, undefined),
    publish(policy_rejected, #{source => Source, problems => Problems}),
    logger:warning("resilience policy from ~0p rejected, the policy in force stays:~n~ts",
                   [Source, format_problems(Problems)], ?LOG).

%% Metrics and events need the application's table and event scope; a policy validated or set
%% without the application running (a script, a unit test) still works.
metrics(Result, Version) ->
    case ets:whereis(autonomic_metrics) of
        undefined ->
            ok;
        _ ->
            ok = autonomic_metrics:declare(autonomic_policy_changes_total, counter,
                                           "Resilience policies installed and rejected on this node."),
            ok = autonomic_metrics:declare(autonomic_policy_version, gauge,
                                           "Version of the resilience policy in force (installs on this node)."),
            ok = autonomic_metrics:inc(autonomic_policy_changes_total, #{result => Result}),
            case Version of
                undefined -> ok;
                _ -> autonomic_metrics:set(autonomic_policy_version, #{}, Version)
            end
    end.

publish(Type, Detail) ->
    case whereis(autonomic_events:scope()) of
        undefined -> ok;
        _ -> _ = autonomic_events:publish(Type, Detail), ok
    end.

%%% Problems

%% @doc One line per problem: `slo.availability = 1.5: must be a fraction in [0.5, 1) ...',
%% prefixed with `line L, column C: ' when the problem has a place in a file.
-spec format_problems([problem()]) -> unicode:chardata().
format_problems(Problems) ->
    [[format_problem(P), $\n] || P <- Problems].

format_problem(#{field := Field, value := Value, why := Why} = P) ->
    Where = case P of
                #{line := L, column := C} -> io_lib:format("line ~b, column ~b: ", [L, C]);
                #{line := L} -> io_lib:format("line ~b: ", [L]);
                _ -> ""
            end,
    Name = case Field of
               [] -> "policy";
               _ -> lists:join(".", [io_lib:format("~ts", [to_text(F)]) || F <- Field])
           end,
    io_lib:format("  ~ts~ts = ~tp: ~ts", [Where, Name, Value, Why]).

to_text(A) when is_atom(A) -> atom_to_binary(A);
to_text(B) when is_binary(B) -> B;
to_text(T) -> io_lib:format("~0tp", [T]).

file_problem(Path, Why) ->
    #{field => [], value => Path, why => Why}.

read_error(Posix) ->
    iolist_to_binary(["cannot read the file: ", file:format_error(Posix)]).

location(Line) -> #{line => Line}.

size_ok(Path, Max) ->
    case file:read_file_info(Path) of
        {ok, #file_info{size = Size}} when Size =< Max ->
            ok;
        {ok, #file_info{size = Size}} ->
            {error, file_problem(Path, iolist_to_binary(io_lib:format(
                                        "the file is ~b bytes; at most ~b are read", [Size, Max])))};
        {error, Posix} ->
            {error, file_problem(Path, read_error(Posix))}
    end.
