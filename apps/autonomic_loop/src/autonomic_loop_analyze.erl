%%% @doc Analyze, pure: symptoms (the monitor's events since the last cycle and a snapshot of the
%%% services and the quorum) to incidents with a failure type, one of the seed's root causes
%%% (`memory_leak', `cpu_saturation', `network_issue', `disk_full', `invalid_config',
%%% `service_unavailable', `unknown'), a target, symptoms (the knowledge base's vocabulary:
%%% binaries) and a confidence.
%%%
%%% Rules give a base confidence (how sure the rule is of its diagnosis); the knowledge base adds
%%% evidence with {@link confidence/2}: past failures similar to this one (Jaccard at least 0.5)
%%% of the same failure type that were recovered raise it towards 1:
%%% `confidence = base + (1 - base) * 0.6 * min(1, W / 5)', `W' the sum of the similarities of the
%%% successful matches, so five identical successes bring an unknown failure (base 0.3) to 0.72.
%%% Below the policy's `min_confidence' (0.7) the loop asks a human instead of acting.
-module(autonomic_loop_analyze).

-export([incidents/1, confidence/2, incident_id/2]).

-export_type([incident/0, input/0]).

-type incident() :: #{id := binary(), failure_type := atom(), root_cause := atom(),
                      target := autonomic_loop_op:target(), symptoms := [binary()],
                      confidence := float(), detected_at := integer(), service => atom(),
                      spec => map(), atom() => term()}.
-type input() :: #{events := [autonomic_events:event()],
                   services := [{node(), atom(), map(), up | down}],
                   quorum := map(), now := integer(), memory => #{{node(), atom()} => non_neg_integer()},
                   checks => #{{node(), term()} => atom()}}.
%% `quorum' is `quorum_manager:get_quorum_status/0' plus `connected', the nodes connected to
%% the coordinator's node.

%% Known failure kinds (application reports and rules): {failure type, root cause, base confidence}.
-define(KINDS, #{
    service_down => {process_crash, service_unavailable, 0.9},
    process_crash => {process_crash, service_unavailable, 0.85},
    memory_leak => {memory_leak, memory_leak, 0.8},
    cpu_saturation => {cpu_saturation, cpu_saturation, 0.8},
    invalid_config => {invalid_config, invalid_config, 0.8},
    disk_full => {disk_full, disk_full, 0.8},
    network_issue => {network_issue, network_issue, 0.75},
    tenant_flood => {tenant_flood, cpu_saturation, 0.85},
    backend_down => {backend_down, service_unavailable, 0.85}
}).

%% @doc The incidents the input shows, one per (target, failure type), oldest symptom first.
-spec incidents(input()) -> [incident()].
incidents(#{events := Events, services := Services, quorum := Quorum, now := Now} = Input) ->
    Memory = maps:get(memory, Input, #{}),
    FromEvents = lists:append([from_event(E, Services, Quorum#{memory => Memory}) || E <- Events]),
    FromSnapshot = from_snapshot(Services, Quorum, Now) ++ checks_down(Services, maps:get(checks, Input, #{}), Now),
    dedup(FromEvents ++ FromSnapshot).

from_event(#{type := failure_reported, node := From, at := At, detail := D}, Services, _Q) ->
    Kind = maps:get(kind, D, unknown),
    Node = case maps:get(node, D, From) of N when is_atom(N) -> N; _ -> From end,
    {Type, Cause, Base} = maps:get(Kind, ?KINDS, {unknown, unknown, 0.3}),
    Symptoms = [sym(failure_reported), sym(Kind)] ++ [sym({reason, R}) || R <- [maps:get(reason, D, none)], R =/= none],
    case {Kind, maps:find(tenant, D), maps:find(service, D)} of
        {tenant_flood, {ok, T}, _} when is_binary(T) ->
            [incident(Type, Cause, Base, {tenant, Node, T}, Symptoms, At, service_of(Node, maps:get(service, D, undefined), Services))];
        {_, _, {ok, S}} when is_atom(S) ->
            [incident(Type, Cause, Base, {service, Node, S}, Symptoms, At, service_of(Node, S, Services))];
        {_, _, _} ->
            [incident(Type, Cause, Base, {node, Node}, Symptoms, At, #{})]
    end;
from_event(#{type := node_down, at := At, detail := #{peer := Peer}}, _Services, Quorum) ->
    %% Still gone when the cycle looks (a node that came back at once needs nothing); whether
    %% the quorum manager has dropped it already or not, the operation makes sure it is.
    case not lists:member(Peer, maps:get(connected, Quorum, [])) of
        true -> [incident(node_down, network_issue, 0.9, {node, Peer}, [sym(node_down), sym(heartbeat_lost)], At, #{})];
        false -> []
    end;
from_event(#{type := backend_down, node := Node, at := At, detail := #{check := Check} = D}, Services, _Q) ->
    Symptoms = [sym(backend_down), sym({check, Check})] ++ [sym({reason, R}) || R <- [maps:get(reason, D, none)], R =/= none],
    case [{Name, Spec} || {N, Name, Spec, _} <- Services, N =:= Node, lists:member(Check, maps:get(checks, Spec, [])),
                          maps:get(backend, Spec, undefined) =/= undefined] of
        [{Name, Spec} | _] ->
            [incident(backend_down, service_unavailable, 0.85, {backend, Node, maps:get(backend, Spec)}, Symptoms, At,
                      #{service => Name, spec => Spec})];
        [] ->
            %% A check that belongs to no service with a backend: nothing known to fail over.
            [incident(unknown, unknown, 0.3, {node, Node}, Symptoms, At, #{})]
    end;
from_event(#{type := resource_exhausted, node := Node, at := At, detail := #{resource := memory}}, Services, Q) ->
    %% Memory pressure is put on the registered service of the node that holds the most memory
    %% (a leak restarts away); a node without one keeps it as a resource incident.
    Symptoms = [sym(resource_exhausted), sym({resource, memory})],
    Mem = maps:get(memory, Q, #{}),
    case lists:sort([{-maps:get({Node, Name}, Mem, 0), Name, Spec} || {N, Name, Spec, up} <- Services, N =:= Node,
                                                                     maps:is_key({Node, Name}, Mem)]) of
        [{_, Name, Spec} | _] ->
            [incident(memory_leak, memory_leak, 0.75, {service, Node, Name}, Symptoms, At, #{service => Name, spec => Spec})];
        [] ->
            [incident(memory_leak, memory_leak, 0.75, {resource, Node, memory}, Symptoms, At, #{})]
    end;
from_event(#{type := network_partition, at := At, detail := D}, _S, _Q) ->
    Symptoms = [sym(network_partition)] ++ [sym(majority_unreachable) || maps:get(majority_unreachable, D, false) =:= true],
    [incident(network_partition, network_issue, 0.85, {cluster}, Symptoms, At, #{})];
from_event(#{type := resource_exhausted, node := Node, at := At, detail := #{resource := R}}, _S, _Q) ->
    {Type, Cause} = case R of
        memory -> {memory_leak, memory_leak};
        cpu -> {cpu_saturation, cpu_saturation};
        disk -> {disk_full, disk_full};
        _ -> {resource_exhausted, unknown}
    end,
    [incident(Type, Cause, 0.75, {resource, Node, R}, [sym(resource_exhausted), sym({resource, R})], At, #{})];
from_event(_Other, _Services, _Quorum) ->
    [].

%% What needs healing whether or not an event said so: a registered service whose supervisor is
%% down (and, in checks_down/3, a service's backend check that is down). (Not a member that is unreachable: while a cluster starts, members are unreachable
%% until they connect, and a node lost while no coordinator listened is dropped by the quorum
%% manager's own node-loss handling.)
from_snapshot(Services, _Quorum, Now) ->
    [incident(process_crash, service_unavailable, 0.9, {service, N, Name},
              [sym(failure_reported), sym(service_down)], Now, #{service => Name, spec => Spec})
     || {N, Name, Spec, down} <- Services].

%% A service's backend check that is down now, whether or not its event reached a coordinator
%% (it may have been published while none was registered).
checks_down(Services, Checks, Now) ->
    [incident(backend_down, service_unavailable, 0.85, {backend, N, B}, [sym(backend_down), sym({check, C})], Now,
              #{service => Name, spec => Spec})
     || {N, Name, #{backend := B} = Spec, _} <- Services, B =/= undefined,
        C <- maps:get(checks, Spec, []), maps:get({N, C}, Checks, unknown) =:= down].

service_of(_Node, undefined, _Services) -> #{};
service_of(Node, Name, Services) ->
    case [Spec || {N, S, Spec, _} <- Services, N =:= Node, S =:= Name] of
        [Spec | _] -> #{service => Name, spec => Spec};
        [] -> #{service => Name}
    end.

incident(Type, Cause, Base, Target, Symptoms, At, Extra) ->
    maps:merge(Extra, #{id => incident_id(Target, Type), failure_type => Type, root_cause => Cause,
                        target => Target, symptoms => lists:usort(Symptoms), confidence => float(Base),
                        base_confidence => float(Base), detected_at => At}).

%% One incident per (target, failure type): the earliest detection, the union of the symptoms.
dedup(Incidents) ->
    Merged = lists:foldl(fun(#{target := T, failure_type := F} = I, Acc) ->
                                 case maps:find({T, F}, Acc) of
                                     {ok, #{detected_at := At0, symptoms := S0} = I0} ->
                                         maps:put({T, F}, I0#{detected_at := min(At0, maps:get(detected_at, I)),
                                                              symptoms := lists:usort(S0 ++ maps:get(symptoms, I))}, Acc);
                                     error ->
                                         maps:put({T, F}, I, Acc)
                                 end
                         end, #{}, Incidents),
    lists:sort(fun(#{detected_at := A}, #{detected_at := B}) -> A =< B end, maps:values(Merged)).

%% @doc The incident's confidence with the knowledge base's evidence: `Matches' are
%% `autonomic_kb:similar/2' results (`{Score, Failure}').
-spec confidence(incident(), [{float(), map()}]) -> incident().
confidence(#{failure_type := Type, base_confidence := Base} = I, Matches) ->
    W = lists:sum([S || {S, #{failure_type := T, success := true}} <- Matches, same_type(T, Type)]),
    C = Base + (1 - Base) * 0.6 * min(1.0, W / 5),
    I#{confidence := min(1.0, C), evidence => #{matches => length(Matches), weight => W}}.

same_type(T, Type) when is_atom(T) -> T =:= Type;
same_type(T, Type) when is_binary(T) -> T =:= atom_to_binary(Type);
same_type(_, _) -> false.

%% @doc A stable id of an incident: the same target and failure type give the same id.
-spec incident_id(autonomic_loop_op:target(), atom()) -> binary().
incident_id(Target, Type) ->
    <<H:64, _/binary>> = crypto:hash(sha256, term_to_binary({Target, Type})),
    iolist_to_binary(io_lib:format("inc-~16.16.0b", [H])).

sym(A) when is_atom(A) -> atom_to_binary(A);
sym({K, V}) -> iolist_to_binary([atom_to_binary(K), ":", short(V)]).

short(V) when is_atom(V) -> atom_to_binary(V);
short(V) when is_binary(V), byte_size(V) =< 64 -> V;
short(V) ->
    B = iolist_to_binary(io_lib:format("~0p", [V])),
    binary:part(B, 0, min(64, byte_size(B))).
