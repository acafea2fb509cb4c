%%% @doc The cluster's event bus: every part of autonomic publishes what it sees here, and
%%% subscribers (the MAPE-K loop, dashboards, application code) receive
%%% `{autonomic_event, #{type := Type, node := Node, at := SystemTimeMs, detail := Map}}'.
%%%
%%% Subscriptions are `pg' group memberships in the `autonomic_events' scope, so they follow
%%% processes across the cluster: a `cluster' subscriber gets the events of every connected node,
%%% a `local' subscriber only those published on its own node. A dead subscriber is dropped by
%%% `pg' automatically. Publishing is a plain send per subscriber: it never blocks the publisher
%%% and never waits for a slow subscriber.
%%%
%%% Every published event also increments `autonomic_events_total{type}' on the publishing node.
%% Delivery is best effort, like any Erlang message: an event to a subscriber whose link is
%% congested is dropped rather than blocking the publisher.
-module(autonomic_events).

-export([scope/0, subscribe/0, subscribe/1, unsubscribe/0, publish/2, subscribers/0]).
-export([subscribe/2, unsubscribe/1]).

-export_type([event/0, type/0]).

-type type() :: atom().
-type event() :: #{type := type(), node := node(), at := integer(), detail := map()}.

-define(SCOPE, autonomic_events).
-define(CLUSTER, cluster).
-define(LOCAL, local).

%% @doc The `pg' scope; `autonomic_sup' starts it.
-spec scope() -> atom().
scope() -> ?SCOPE.

%% @doc Subscribes the calling process to the events of every node (`cluster').
-spec subscribe() -> ok.
subscribe() ->
    subscribe(cluster).

%% @doc Subscribes the calling process to every node's events (`cluster') or to this node's only
%% (`local'). Subscribing again replaces the previous subscription.
-spec subscribe(cluster | local) -> ok | {error, {bad_scope, term()}}.
subscribe(Which) ->
    subscribe(Which, self()).

%% @doc Ends the calling process's subscription (idempotent).
-spec unsubscribe() -> ok.
unsubscribe() ->
    unsubscribe(self()).

%% @doc Publishes an event to every subscriber that should see it; returns the event sent.
-spec publish(type(), map()) -> event().
publish(Type, Detail) when is_atom(Type), is_map(Detail) ->
    Event = #{type => Type, node => node(), at => erlang:system_time(millisecond), detail => Detail},
    Msg = {autonomic_event, Event},
    Targets = pg:get_members(?SCOPE, ?CLUSTER) ++ pg:get_local_members(?SCOPE, ?LOCAL),
    %% nosuspend: a subscriber behind a congested link misses this event rather than stalling
    %% the publisher (the monitor, the loop); noconnect: never set up a link just to deliver.
    lists:foreach(fun(Pid) -> _ = erlang:send(Pid, Msg, [nosuspend, noconnect]) end, Targets),
    autonomic_metrics:inc(autonomic_events_total, #{type => Type}),
    logger:debug("autonomic event ~p: ~p", [Type, Detail], #{domain => [autonomic, events]}),
    Event.

%% @doc The processes subscribed on this node.
-spec subscribers() -> [pid()].
subscribers() ->
    pg:get_local_members(?SCOPE, ?CLUSTER) ++ pg:get_local_members(?SCOPE, ?LOCAL).

%% @doc Subscribes the local process `Pid' (`mape_k_monitor:subscribe/1' takes a pid).
-spec subscribe(cluster | local, pid()) -> ok | {error, {bad_scope, term()} | {not_local, pid()}}.
subscribe(Which, Pid) when (Which =:= cluster orelse Which =:= local), is_pid(Pid), node(Pid) =:= node() ->
    ok = unsubscribe(Pid),
    pg:join(?SCOPE, group(Which), Pid);
subscribe(Which, Pid) when Which =:= cluster; Which =:= local ->
    {error, {not_local, Pid}};
subscribe(Other, _Pid) ->
    {error, {bad_scope, Other}}.

%% @doc Ends the subscription of the local process `Pid' (idempotent).
-spec unsubscribe(pid()) -> ok.
unsubscribe(Pid) when is_pid(Pid) ->
    lists:foreach(
        fun(G) ->
            case lists:member(Pid, pg:get_local_members(?SCOPE, G)) of
                true -> ok = pg:leave(?SCOPE, G, Pid);
                false -> ok
            end
        end,
        [?CLUSTER, ?LOCAL]
    ).

group(cluster) -> ?CLUSTER;
group(local) -> ?LOCAL.
