%%% @doc Concurrency of the governor NIF: 8 processes doing 100,000 transitions each, on one shared
%%% tenant and on distinct tenants, with invalid calls mixed in. The per-tenant `transitions'
%%% counters must add up exactly to the calls that returned `{ok, _, _}': no update lost, none
%%% counted twice, no rejected call counted.
-module(autonomic_governor_concurrency_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1]).
-export([shared_tenant/1, distinct_tenants/1, mixed_tenants_with_forget/1]).

-define(PROCS, 8).
-define(CALLS, 100000).

all() -> [shared_tenant, distinct_tenants, mixed_tenants_with_forget].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(autonomic),
    Config.

end_per_suite(_Config) ->
    ok = application:stop(autonomic).

shared_tenant(_Config) ->
    Tenant = unique(<<"shared">>),
    Oks = run_workers(fun(_) -> Tenant end),
    {ok, #{transitions := N}} = autonomic:governor_info(Tenant),
    ct:log("~b successful calls, counter ~b", [Oks, N]),
    ?assertEqual(Oks, N),
    %% One in ten calls is invalid by construction.
    ?assertEqual(?PROCS * ?CALLS * 9 div 10, Oks).

distinct_tenants(_Config) ->
    Base = unique(<<"distinct">>),
    Tenants = [<<Base/binary, "-", (integer_to_binary(I))/binary>> || I <- lists:seq(1, ?PROCS)],
    Oks = run_workers(fun(I) -> lists:nth(I, Tenants) end),
    Counts = [maps:get(transitions, element(2, autonomic:governor_info(T))) || T <- Tenants],
    ?assertEqual(Oks, lists:sum(Counts)),
    ?assertEqual([?CALLS * 9 div 10 || _ <- Tenants], Counts).

%% Workers spread over 64 tenants (so several share a lock shard) while another process keeps
%% forgetting and recreating an unrelated tenant: the forgotten tenant must not disturb the others.
mixed_tenants_with_forget(_Config) ->
    Base = unique(<<"mixed">>),
    Tenants = list_to_tuple([<<Base/binary, "-", (integer_to_binary(I))/binary>> || I <- lists:seq(1, 64)]),
    Churn = unique(<<"churn">>),
    Parent = self(),
    Churner = spawn_link(fun() -> churn(Parent, Churn, 0) end),
    Oks = run_workers(fun(I) -> {Tenants, I} end),
    Churner ! stop,
    receive {churned, C} -> ct:log("forgot and recreated a tenant ~b times", [C]) end,
    Counts = [maps:get(transitions, element(2, autonomic:governor_info(T))) || T <- tuple_to_list(Tenants)],
    ?assertEqual(Oks, lists:sum(Counts)).

%%% Helpers

unique(Prefix) ->
    <<Prefix/binary, "-", (integer_to_binary(erlang:unique_integer([positive])))/binary>>.

%% Starts ?PROCS workers; TenantFor(I) gives worker I's tenant, or {Tuple, I} to rotate over a
%% tuple of tenants. Returns the total number of successful calls.
run_workers(TenantFor) ->
    Parent = self(),
    Pids = [spawn_link(fun() -> Parent ! {done, self(), worker(TenantFor(I), I)} end) || I <- lists:seq(1, ?PROCS)],
    lists:sum([receive {done, P, Oks} -> Oks end || P <- Pids]).

worker(Tenant, Seed) ->
    rand:seed(exsss, {Seed, Seed * 7, Seed * 13}),
    worker(Tenant, ?CALLS, 0).

worker(_Tenant, 0, Oks) ->
    Oks;
worker(Tenant, N, Oks) ->
    T = pick(Tenant, N),
    Event = event(N),
    case autonomic:transition(T, Event) of
        {ok, _, _} -> worker(Tenant, N - 1, Oks + 1);
        {error, _} -> worker(Tenant, N - 1, Oks)
    end.

pick({Tuple, _I}, N) -> element(1 + N rem tuple_size(Tuple), Tuple);
pick(Tenant, _N) -> Tenant.

%% Exactly one call in ten is invalid (alternating between an invalid signal and an unknown
%% event); the rest walk the whole table.
event(N) when N rem 20 =:= 0 -> {signal, cpu, 150};
event(N) when N rem 10 =:= 0 -> bogus;
event(_N) ->
    case rand:uniform(20) of
        1 -> action_succeeded;
        2 -> action_failed;
        3 -> reset;
        _ -> {signal, cpu, rand:uniform(101) - 1}
    end.

churn(Parent, Tenant, Count) ->
    receive
        stop -> Parent ! {churned, Count}
    after 0 ->
        {ok, _, _} = autonomic:transition(Tenant, {signal, cpu, 50}),
        ok = autonomic:forget_tenant(Tenant),
        churn(Parent, Tenant, Count + 1)
    end.
