%%% @doc Governor benchmark (`make bench'); not a test, nothing here asserts a time.
%%%
%%% Measures, side by side in one run on this machine:
%%% <ul>
%%%   <li>(a) the NIF (`autonomic:transition/2');</li>
%%%   <li>(b) one `gen_statem' per tenant running the pure Erlang model, called with
%%%       `gen_statem:call/2';</li>
%%%   <li>(c) the pure Erlang model as a function over a map of tenants held by the caller.</li>
%%% </ul>
%%% for throughput (one caller, then one caller per scheduler) and per-call latency (p50, p99),
%%% then the memory per tenant with 1,000,000 tenants.
-module(governor_bench).

-export([main/0, main/1]).

%% gen_statem callbacks for variant (b)
-export([init/1, callback_mode/0, handle_event/4]).

-define(TENANTS, 1000).
-define(CALLS, 1000000).
-define(LAT_SAMPLES, 200000).

main() -> main(#{}).

main(Opts) ->
    Calls = maps:get(calls, Opts, ?CALLS),
    MemTenants = maps:get(mem_tenants, Opts, 1000000),
    {ok, _} = application:ensure_all_started(autonomic),
    io:format("governor benchmark: ~b tenants, ~b calls per variant, ~b schedulers~n~n",
              [?TENANTS, Calls, erlang:system_info(schedulers_online)]),
    Tenants = list_to_tuple([<<"bench-", (integer_to_binary(I))/binary>> || I <- lists:seq(1, ?TENANTS)]),
    Events = list_to_tuple(events()),
    Variants = [
        {"(a) NIF", nif_variant(Tenants)},
        {"(b) gen_statem per tenant", statem_variant(Tenants)},
        {"(c) pure Erlang map", map_variant(Tenants)}
    ],
    Results = [{Name, measure(Name, V, Tenants, Events, Calls)} || {Name, V} <- Variants],
    print_table(Results),
    memory(MemTenants),
    ok.

%%% Variants: each is a fun that runs N calls from the calling process and returns the
%%% throughput and a latency sample, plus a setup/teardown.

nif_variant(_Tenants) ->
    #{
        setup => fun() -> none end,
        call => fun(_State, Tenant, Event) -> autonomic:transition(Tenant, Event) end,
        stateful => false,
        teardown => fun(_) -> ok end
    }.

statem_variant(Tenants) ->
    #{
        setup => fun() ->
            maps:from_list([
                {T, element(2, gen_statem:start(?MODULE, [], []))}
             || T <- tuple_to_list(Tenants)
            ])
        end,
        call => fun(Pids, Tenant, Event) -> gen_statem:call(maps:get(Tenant, Pids), Event) end,
        stateful => false,
        teardown => fun(Pids) -> [exit(P, kill) || P <- maps:values(Pids)], ok end
    }.

map_variant(_Tenants) ->
    Th = governor_model:default_thresholds(),
    #{
        setup => fun() -> #{} end,
        call => fun(Map, Tenant, Event) ->
            Gov = case Map of
                #{Tenant := G} -> G;
                _ -> governor_model:new()
            end,
            {Gov1, Action} = governor_model:step(Gov, Event, Th),
            {Map#{Tenant => Gov1}, {ok, maps:get(state, Gov1), Action}}
        end,
        stateful => true,
        teardown => fun(_) -> ok end
    }.

%% A cycle of events that walks the whole table.
events() ->
    [{signal, cpu, V} || V <- [45, 78, 78, 92, 60, 80, 80, 80, 97, 50]]
    ++ [reset, {signal, cpu, 92}, action_failed, {signal, cpu, 50}, action_succeeded, {signal, cpu, 20}].

measure(Name, #{setup := Setup, call := Call, stateful := Stateful, teardown := Teardown}, Tenants, Events, Calls) ->
    io:format("  measuring ~ts ...~n", [Name]),
    State = Setup(),
    %% Warm up every tenant.
    State1 = loop(Call, Stateful, State, Tenants, Events, tuple_size(Tenants) * 20),
    {Us, State2} = timer:tc(fun() -> loop(Call, Stateful, State1, Tenants, Events, Calls) end),
    Single = Calls / (Us / 1.0e6),
    Lat = latencies(Call, Stateful, State2, Tenants, Events, ?LAT_SAMPLES),
    Par = case Stateful of
        true -> undefined; %% a map held by one caller cannot be shared
        false -> parallel(Call, State2, Tenants, Events, Calls)
    end,
    Teardown(State2),
    #{single => Single, parallel => Par, p50 => percentile(Lat, 0.50), p99 => percentile(Lat, 0.99)}.

loop(_Call, _Stateful, State, _Tenants, _Events, 0) ->
    State;
loop(Call, Stateful, State, Tenants, Events, N) ->
    T = element(1 + N rem tuple_size(Tenants), Tenants),
    E = element(1 + N rem tuple_size(Events), Events),
    case Stateful of
        true ->
            {State1, {ok, _, _}} = Call(State, T, E),
            loop(Call, Stateful, State1, Tenants, Events, N - 1);
        false ->
            {ok, _, _} = Call(State, T, E),
            loop(Call, Stateful, State, Tenants, Events, N - 1)
    end.

latencies(Call, Stateful, State, Tenants, Events, N) ->
    lists:sort(lat_loop(Call, Stateful, State, Tenants, Events, N, [])).

lat_loop(_Call, _Stateful, _State, _Tenants, _Events, 0, Acc) ->
    Acc;
lat_loop(Call, Stateful, State, Tenants, Events, N, Acc) ->
    T = element(1 + N rem tuple_size(Tenants), Tenants),
    E = element(1 + N rem tuple_size(Events), Events),
    T0 = erlang:monotonic_time(nanosecond),
    R = Call(State, T, E),
    T1 = erlang:monotonic_time(nanosecond),
    State1 = case Stateful of
        true -> element(1, R);
        false -> State
    end,
    lat_loop(Call, Stateful, State1, Tenants, Events, N - 1, [T1 - T0 | Acc]).

parallel(Call, State, Tenants, Events, Calls) ->
    Procs = erlang:system_info(schedulers_online),
    Each = Calls div Procs,
    Parent = self(),
    T0 = erlang:monotonic_time(microsecond),
    Pids = [spawn_link(fun() -> loop(Call, false, State, Tenants, Events, Each), Parent ! {done, self()} end)
            || _ <- lists:seq(1, Procs)],
    [receive {done, P} -> ok end || P <- Pids],
    Us = erlang:monotonic_time(microsecond) - T0,
    Each * Procs / (Us / 1.0e6).

percentile(Sorted, P) ->
    lists:nth(max(1, round(P * length(Sorted))), Sorted).

print_table(Results) ->
    #{single := NifRate} = proplists:get_value("(a) NIF", Results),
    io:format("~n~-28s ~14s ~16s ~10s ~10s ~12s~n",
              ["variant", "calls/s (1)", "calls/s (all)", "p50 ns", "p99 ns", "NIF speedup"]),
    [io:format("~-28s ~14s ~16s ~10b ~10b ~11.1fx~n",
               [Name, rate(S), rate(P), P50, P99, NifRate / S])
     || {Name, #{single := S, parallel := P, p50 := P50, p99 := P99}} <- Results],
    io:format("(1) one caller; (all) one caller per scheduler; speedup = NIF calls/s / variant calls/s, one caller.~n~n").

rate(undefined) -> "n/a";
rate(R) -> io_lib:format("~.2fM", [R / 1.0e6]).

%%% Memory per tenant

memory(N) ->
    io:format("memory per tenant with ~b tenants:~n", [N]),
    garbage_collect(),
    Count0 = autonomic:tenant_count(),
    Before = erlang:memory(system),
    create_tenants(N),
    After = erlang:memory(system),
    Added = autonomic:tenant_count() - Count0,
    io:format("  (a) NIF: ~.1f bytes/tenant (erlang:memory(system) grew ~.1f MB for ~b new tenants; "
              "the NIF allocates through enif_alloc)~n",
              [(After - Before) / Added, (After - Before) / 1.0e6, Added]),
    Th = governor_model:default_thresholds(),
    Map = lists:foldl(
        fun(I, M) ->
            T = tenant(I),
            {G, _} = governor_model:step(governor_model:new(), {signal, cpu, 50}, Th),
            M#{T => G}
        end, #{}, lists:seq(1, N)),
    MapBytes = erts_debug:flat_size(Map) * erlang:system_info(wordsize),
    io:format("  (c) pure Erlang map: ~.1f bytes/tenant (flat size of the map, tenant binaries included)~n",
              [MapBytes / N]),
    StatemN = min(N, 100000),
    M0 = erlang:memory(processes),
    Pids = [element(2, gen_statem:start(?MODULE, [], [])) || _ <- lists:seq(1, StatemN)],
    M1 = erlang:memory(processes),
    io:format("  (b) gen_statem per tenant: ~.1f bytes/tenant (measured over ~b processes)~n",
              [(M1 - M0) / StatemN, StatemN]),
    [exit(P, kill) || P <- Pids],
    [autonomic:forget_tenant(tenant(I)) || I <- lists:seq(1, N)],
    ok.

create_tenants(N) ->
    lists:foreach(fun(I) -> {ok, _, _} = autonomic:transition(tenant(I), {signal, cpu, 50}) end,
                  lists:seq(1, N)).

tenant(I) -> <<"tenant-", (integer_to_binary(I))/binary>>.

%%% gen_statem for variant (b): the model's state is the process's data.

callback_mode() -> handle_event_function.

init([]) -> {ok, running, governor_model:new()}.

handle_event({call, From}, Event, running, Gov) ->
    {Gov1, Action} = governor_model:step(Gov, Event, governor_model:default_thresholds()),
    {keep_state, Gov1, [{reply, From, {ok, maps:get(state, Gov1), Action}}]}.
