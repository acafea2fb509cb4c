%%% @doc An inets httpd module for the escalation tests: a real HTTP endpoint that records every
%%% request (method, path, content type, body) in the public table `webhook_requests' and answers
%%% with the status the test set in `persistent_term' (`{escalate_webhook_mod, Statuses}', one
%%% per request in order, the last repeated).
-module(escalate_webhook_mod).

-include_lib("inets/include/httpd.hrl").

-export([do/1]).

do(#mod{method = Method, request_uri = Uri, entity_body = Body, parsed_header = Headers}) ->
    N = ets:update_counter(webhook_requests, count, 1, {count, 0}),
    true = ets:insert(webhook_requests, {N, Method, Uri, proplists:get_value("content-type", Headers), Body}),
    Statuses = persistent_term:get(?MODULE, [200]),
    Status = lists:nth(min(N, length(Statuses)), Statuses),
    {proceed, [{response, {Status, "ok"}}]}.
