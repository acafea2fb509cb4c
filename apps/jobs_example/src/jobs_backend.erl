%%% @doc The workload's calls to its stores: which one (the active target of the
%%% `autonomic_backends' backend `jobs_store', the other as fallback), each call behind the
%%% target's circuit breaker (`autonomic_breaker', named `<<"jobs_store:Node">>'), and the
%%% timeouts. Writes go to every store (replication); claims to the first store in order that
%%% answers.
-module(jobs_backend).

-export([put/1, claim/2, complete/1, order/0, active/0, breaker/1, install/0, timeout/0]).

-define(BACKEND, jobs_store).
-define(TIMEOUT, 400).

%% @doc Registers the backend and installs one breaker per store (idempotent).
-spec install() -> ok.
install() ->
    [P | _] = Stores = jobs_example:stores(),
    _ = case autonomic_backends:target(?BACKEND) of
        {ok, T} -> lists:member(T, Stores) orelse autonomic_backends:register(?BACKEND, Stores, P);
        {error, not_found} -> autonomic_backends:register(?BACKEND, Stores, P)
    end,
    _ = [autonomic_breaker:install(breaker(S), #{threshold => 3, window_ms => 2000, reset_ms => 1000,
                                                 probes => 1, successes => 1})
         || S <- Stores, autonomic_breaker:info(breaker(S)) =:= {error, not_found}],
    ok.

%% @doc The timeout of one store call (ms).
-spec timeout() -> pos_integer().
timeout() -> ?TIMEOUT.

%% @doc The breaker's name of a store.
-spec breaker(node()) -> binary().
breaker(Store) ->
    <<"jobs_store:", (atom_to_binary(Store))/binary>>.

%% @doc The active store.
-spec active() -> node().
active() ->
    case autonomic_backends:target(?BACKEND) of
        {ok, T} -> T;
        {error, not_found} -> hd(jobs_example:stores())
    end.

%% @doc The stores, active first.
-spec order() -> [node()].
order() ->
    A = active(),
    [A | [S || S <- jobs_example:stores(), S =/= A]].

%% @doc Writes a job to every store; `ok' when at least one took it.
-spec put(jobs_store:job()) -> ok | {error, no_store}.
put(Job) ->
    Results = [guarded(S, fun() -> jobs_store:put(S, Job, ?TIMEOUT) end) || S <- order()],
    case lists:member(ok, Results) of
        true -> ok;
        false -> {error, no_store}
    end.

%% @doc Claims up to `N' jobs for `LeaseMs' from the first store that answers.
-spec claim(pos_integer(), pos_integer()) -> {ok, [jobs_store:job()]} | {error, no_store}.
claim(N, LeaseMs) ->
    first(order(), fun(S) -> jobs_store:claim(S, N, LeaseMs, ?TIMEOUT) end).

%% @doc Marks jobs done on every store; `ok' when at least one took it.
-spec complete([jobs_store:job()]) -> ok | {error, no_store}.
complete(Jobs) ->
    Results = [guarded(S, fun() -> jobs_store:complete(S, Jobs, ?TIMEOUT) end) || S <- order()],
    case lists:member(ok, Results) of
        true -> ok;
        false -> {error, no_store}
    end.

first([], _) ->
    {error, no_store};
first([S | Rest], Fun) ->
    case guarded(S, fun() -> Fun(S) end) of
        {ok, _} = Ok -> Ok;
        _ -> first(Rest, Fun)
    end.

%% One call behind the store's breaker: an open breaker skips the store at once.
guarded(S, Fun) ->
    B = breaker(S),
    case autonomic_breaker:ask(B) of
        blown ->
            {error, blown};
        _ ->
            R = Fun(),
            _ = case R of
                ok -> autonomic_breaker:success(B);
                {ok, _} -> autonomic_breaker:success(B);
                _ -> autonomic_breaker:melt(B)
            end,
            R
    end.
