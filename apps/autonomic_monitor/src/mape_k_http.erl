%%% @doc The Prometheus endpoint: an OTP `inets' httpd bound to `metrics_ip' (127.0.0.1) on
%%% `metrics_port' (9568; 0 picks a free port, `none' disables it) answering `GET /metrics'
%%% with {@link autonomic_metrics:render/0} in the text exposition format 0.0.4.
%%%
%%% This process starts the httpd as an `inets' service (only then can `httpd:info/2' tell the
%%% port picked for port 0), monitors it, and stops it when it terminates itself: the server lives
%%% and dies with this process under the monitor's supervisor. The module is also the httpd's
%%% request handler ({@link do/1}): every other path is 404, every other method 405.
-module(mape_k_http).
-behaviour(gen_server).

-include_lib("inets/include/httpd.hrl").

-export([start_link/0, port/0, url/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).
%% httpd callback
-export([do/1]).

-define(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8").

%%% API

%% @doc Starts the endpoint (from the monitor's supervisor).
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc The port the endpoint listens on (the one picked by the system when configured 0).
-spec port() -> {ok, inet:port_number()} | {error, disabled}.
port() ->
    gen_server:call(?MODULE, port).

%% @doc The URL of the metrics, e.g. `"http://127.0.0.1:9568/metrics"'.
-spec url() -> {ok, string()} | {error, disabled}.
url() ->
    case port() of
        {ok, Port} ->
            {ok, lists:flatten(io_lib:format("http://~s:~b/metrics", [inet:ntoa(mape_k_config:get(metrics_ip)), Port]))};
        Error ->
            Error
    end.

%%% gen_server

%% @private
-spec init([]) -> {ok, disabled | {pid(), inet:port_number()}} | {stop, term()}.
init([]) ->
    case mape_k_config:get(metrics_port) of
        none ->
            {ok, disabled};
        Port ->
            Ip = mape_k_config:get(metrics_ip),
            Root = code:lib_dir(autonomic_monitor),
            Config = [
                {port, Port},
                {bind_address, Ip},
                {ipfamily, case tuple_size(Ip) of 4 -> inet; 8 -> inet6 end},
                {server_name, "autonomic"},
                {server_root, Root},
                {document_root, Root},
                {modules, [?MODULE]},
                {max_clients, 16},
                {keep_alive, true}
            ],
            process_flag(trap_exit, true),
            case inets:start(httpd, Config) of
                {ok, Pid} ->
                    _ = erlang:monitor(process, Pid),
                    [{port, Bound}] = httpd:info(Pid, [port]),
                    logger:info("metrics on http://~s:~b/metrics", [inet:ntoa(Ip), Bound],
                                #{domain => [autonomic, monitor]}),
                    {ok, {Pid, Bound}};
                {error, Reason} ->
                    {stop, {metrics_endpoint, Port, Reason}}
            end
    end.

%% @private
-spec handle_call(term(), gen_server:from(), State) -> {reply, term(), State}.
handle_call(port, _From, disabled) ->
    {reply, {error, disabled}, disabled};
handle_call(port, _From, {_, Port} = St) ->
    {reply, {ok, Port}, St};
handle_call(_Req, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @private
-spec handle_cast(term(), State) -> {noreply, State}.
handle_cast(_Msg, St) ->
    {noreply, St}.

%% @private
-spec handle_info(term(), State) -> {noreply, State} | {stop, term(), State}.
handle_info({'DOWN', _, process, Pid, Reason}, {Pid, _} = St) ->
    {stop, {httpd_down, Reason}, St};
handle_info(_Other, St) ->
    {noreply, St}.

%% @private
-spec terminate(term(), term()) -> ok.
terminate(_Reason, {Pid, _}) ->
    _ = inets:stop(httpd, Pid),
    ok;
terminate(_Reason, _St) ->
    ok.

%%% httpd callback

%% @private
-spec do(#mod{}) -> {proceed, list()}.
do(#mod{method = Method, request_uri = Uri}) ->
    Path = hd(string:split(Uri, "?")),
    {proceed, [{response, response(Method, Path)}]}.

response(M, "/metrics") when M =:= "GET"; M =:= "HEAD" ->
    Body = iolist_to_binary(autonomic_metrics:render()),
    {response, [{code, 200}, {content_type, ?CONTENT_TYPE}, {content_length, integer_to_list(byte_size(Body))}],
     [Body]};
response(_, "/metrics") ->
    plain(405, "method not allowed\n");
response(_, _) ->
    plain(404, "not found; try /metrics\n").

plain(Code, Text) ->
    {response, [{code, Code}, {content_type, "text/plain"}, {content_length, integer_to_list(length(Text))}], [Text]}.
