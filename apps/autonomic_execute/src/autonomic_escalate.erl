%%% @doc Escalation: when automation cannot fix something, tell people. Every escalation is logged
%%% (always), published on the event bus as `escalation', and delivered to the registered
%%% notification handlers: user callbacks, and webhooks (an HTTP POST of the escalation as JSON,
%%% through `httpc').
%%%
%%% ```
%%% 1> autonomic_escalate:register_handler(pager, fun(E) -> pager:page(maps:get(summary, E)) end).
%%% ok
%%% 2> autonomic_escalate:register_handler(ops_hook, {webhook, "http://ops.example/hooks/autonomic"}).
%%% ok
%%% 3> autonomic_escalate:escalate(critical, <<"db failover failed">>, #{backend => db}).
%%% {ok,#{logger => ok,pager => ok,ops_hook => ok}}
%%% '''
%%%
%%% An escalation is `#{id, severity, summary, detail, node, at}' (`at' in milliseconds since the
%%% epoch; `severity' is `info | warning | error | critical', also the logger level). Handlers
%%% run concurrently, each in a process of its own, so a slow or crashing handler delays or
%%% harms no other and never the caller: each gets `escalation_timeout_ms' (5 s) and is killed
%%% after. A webhook is retried ({@link autonomic_retry}, 3 attempts) on connection errors and 5xx
%%% answers; a 2xx answer is a delivery. The `escalation_webhook' configuration key registers a
%%% webhook handler named `webhook' at start. Deliveries are counted in
%%% `autonomic_escalations_total{severity}' and
%%% `autonomic_escalation_deliveries_total{handler, outcome}'.
-module(autonomic_escalate).
-behaviour(gen_server).

-export([start_link/0]).
-export([escalate/3, escalate_async/3, register_handler/2, unregister_handler/1, handlers/0, valid_url/1]).
-export([init/1, handle_call/3, handle_cast/2]).

-export_type([severity/0, handler/0, escalation/0]).

-define(TAB, autonomic_escalation_handlers).
-define(LOG, #{domain => [autonomic, execute]}).

-type severity() :: info | warning | error | critical.
-type handler() ::
    fun((escalation()) -> term())
    | {webhook, Url :: string() | binary()}
    | {webhook, Url :: string() | binary(), #{headers => [{string(), string()}], max_attempts => pos_integer()}}.
-type escalation() :: #{id := binary(), severity := severity(), summary := binary(), detail := map(),
                        node := node(), at := integer()}.

%%% API

%% @doc Starts the handler registry (from `autonomic_execute_sup').
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Escalates and waits for every handler (at most `escalation_timeout_ms'); returns each
%% handler's outcome, `logger' included.
-spec escalate(severity(), iodata(), map()) -> {ok, #{atom() | binary() => ok | {error, term()}}} | {error, term()}.
escalate(Severity, Summary, Detail) ->
    case check(Severity, Summary, Detail) of
        {ok, E} -> {ok, deliver(E)};
        {error, _} = Error -> Error
    end.

%% @doc Escalates without waiting for the handlers (the logger line and the event are written
%% before it returns).
-spec escalate_async(severity(), iodata(), map()) -> ok | {error, term()}.
escalate_async(Severity, Summary, Detail) ->
    case check(Severity, Summary, Detail) of
        {ok, E} ->
            Handlers = handlers(),
            log_and_publish(E),
            _ = spawn(fun() -> _ = deliver_to(E, Handlers) end),
            ok;
        {error, _} = Error ->
            Error
    end.

%% @doc Registers (or replaces) a handler under `Id' (an atom or a binary, other than `logger').
-spec register_handler(atom() | binary(), handler()) -> ok | {error, term()}.
register_handler(logger, _Handler) ->
    {error, {reserved_id, logger}};
register_handler(Id, Handler) when is_atom(Id); is_binary(Id) ->
    case valid_handler(Handler) of
        true -> gen_server:call(?MODULE, {register, Id, Handler});
        false -> {error, {invalid_handler, Handler}}
    end;
register_handler(Id, _Handler) ->
    {error, {invalid_id, Id}}.

%% @doc Removes a handler. Idempotent.
-spec unregister_handler(atom() | binary()) -> ok.
unregister_handler(Id) ->
    gen_server:call(?MODULE, {unregister, Id}).

%% @doc The registered handlers.
-spec handlers() -> [{atom() | binary(), handler()}].
handlers() ->
    lists:sort(ets:tab2list(?TAB)).

%% @doc Whether `Url' is an `http://' or `https://' URL (a string or a binary).
-spec valid_url(term()) -> boolean().
valid_url(Url) when is_binary(Url) ->
    valid_url(binary_to_list(Url));
valid_url(Url) when is_list(Url) ->
    try uri_string:parse(Url) of
        #{scheme := S, host := H} when (S =:= "http" orelse S =:= "https"), H =/= "" -> true;
        _ -> false
    catch
        _:_ -> false
    end;
valid_url(_) ->
    false.

%%% gen_server

%% @private
-spec init([]) -> {ok, #{}}.
init([]) ->
    _ = ets:new(?TAB, [named_table, protected, set, {read_concurrency, true}]),
    case autonomic_execute_config:get(escalation_webhook) of
        none -> ok;
        Url -> true = ets:insert(?TAB, {webhook, {webhook, Url}})
    end,
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, term(), map()}.
handle_call({register, Id, Handler}, _From, S) ->
    true = ets:insert(?TAB, {Id, Handler}),
    {reply, ok, S};
handle_call({unregister, Id}, _From, S) ->
    true = ets:delete(?TAB, Id),
    {reply, ok, S};
handle_call(_Req, _From, S) ->
    {reply, {error, unknown_call}, S}.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) ->
    {noreply, S}.

%%% Delivery

check(Severity, Summary, Detail) ->
    case {lists:member(Severity, [info, warning, error, critical]), summary(Summary), is_map(Detail)} of
        {false, _, _} -> {error, {invalid_severity, Severity}};
        {_, error, _} -> {error, {invalid_summary, Summary}};
        {_, _, false} -> {error, {invalid_detail, Detail}};
        {true, {ok, S}, true} ->
            Id = integer_to_binary(erlang:unique_integer([positive, monotonic])),
            {ok, #{id => <<(atom_to_binary(node()))/binary, "/", Id/binary>>, severity => Severity,
                   summary => S, detail => Detail, node => node(), at => erlang:system_time(millisecond)}}
    end.

summary(S) ->
    try unicode:characters_to_binary(S) of
        B when is_binary(B) -> {ok, B};
        _ -> error
    catch
        _:_ -> error
    end.

deliver(E) ->
    Handlers = handlers(),
    log_and_publish(E),
    deliver_to(E, Handlers).

log_and_publish(#{severity := Sev, summary := Summary, detail := Detail} = E) ->
    logger:log(Sev, "escalation: ~ts ~0tp", [Summary, Detail], ?LOG#{escalation => maps:get(id, E)}),
    _ = autonomic_events:publish(escalation, E),
    autonomic_metrics:inc(autonomic_escalations_total, #{severity => Sev}).

deliver_to(E, Handlers) ->
    Timeout = autonomic_execute_config:get(escalation_timeout_ms),
    Self = self(),
    Runs = [{Id, spawn_monitor(fun() -> Self ! {self(), run(Handler, E, Timeout)} end)} || {Id, Handler} <- Handlers],
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    Results = [{Id, collect(Pid, MRef, Deadline)} || {Id, {Pid, MRef}} <- Runs],
    lists:foreach(
        fun({Id, R}) ->
            Outcome = case R of ok -> ok; _ -> error end,
            ok = autonomic_metrics:inc(autonomic_escalation_deliveries_total, #{handler => Id, outcome => Outcome}),
            R =:= ok orelse logger:warning("escalation ~ts: handler ~0p failed: ~0tp", [maps:get(id, E), Id, R], ?LOG)
        end,
        Results),
    maps:from_list([{logger, ok} | Results]).

collect(Pid, MRef, Deadline) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {Pid, Result} ->
            erlang:demonitor(MRef, [flush]),
            Result;
        {'DOWN', MRef, process, Pid, Reason} ->
            {error, {crashed, Reason}}
    after Left ->
        exit(Pid, kill),
        erlang:demonitor(MRef, [flush]),
        receive {Pid, _} -> ok after 0 -> ok end,
        {error, timeout}
    end.

run({webhook, Url}, E, Timeout) ->
    run({webhook, Url, #{}}, E, Timeout);
run({webhook, Url, Opts}, E, Timeout) ->
    webhook(to_list(Url), Opts, E, Timeout);
run(Fun, E, _Timeout) ->
    try Fun(E) of
        {error, _} = Error -> Error;
        _ -> ok
    catch
        Class:Reason -> {error, {Class, Reason}}
    end.

webhook(Url, Opts, E, Timeout) ->
    case ensure_client(Url) of
        ok ->
            Headers = maps:get(headers, Opts, []),
            Body = autonomic_json:encode(E),
            Attempts = maps:get(max_attempts, Opts, 3),
            %% Each attempt gets a share of the handler's time.
            PerTry = max(100, Timeout div (Attempts + 1)),
            Post = fun() ->
                case httpc:request(post, {Url, Headers, "application/json", Body},
                                   [{timeout, PerTry}, {connect_timeout, PerTry}], [{body_format, binary}]) of
                    {ok, {{_, Code, _}, _, _}} when Code >= 200, Code < 300 -> ok;
                    {ok, {{_, Code, _}, _, _}} when Code >= 500 -> {error, {http_status, Code}};
                    {ok, {{_, Code, _}, _, _}} -> {final, {http_status, Code}};
                    {error, Reason} -> {error, Reason}
                end
            end,
            case autonomic_retry:run(Post, #{max_attempts => Attempts, base_ms => 50, max_delay_ms => 1000}) of
                ok -> ok;
                {final, Status} -> {error, Status};
                {error, _} = Error -> Error
            end;
        {error, _} = Error ->
            Error
    end.

%% httpc needs inets (a dependency of this application) and, for https, ssl.
ensure_client("https:" ++ _) ->
    case application:ensure_all_started(ssl) of
        {ok, _} -> ok;
        {error, Reason} -> {error, {ssl_unavailable, Reason}}
    end;
ensure_client(_) ->
    ok.

valid_handler(F) when is_function(F, 1) -> true;
valid_handler({webhook, Url}) -> valid_url(Url);
valid_handler({webhook, Url, Opts}) when is_map(Opts) ->
    valid_url(Url) andalso maps:size(maps:without([headers, max_attempts], Opts)) =:= 0
        andalso is_list(maps:get(headers, Opts, []))
        andalso case maps:get(max_attempts, Opts, 3) of N when is_integer(N), N >= 1 -> true; _ -> false end;
valid_handler(_) -> false.

to_list(B) when is_binary(B) -> binary_to_list(B);
to_list(L) -> L.
