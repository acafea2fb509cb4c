%%% @doc The autonomic application: applies the configured governor thresholds, then starts the
%%% top supervisor. A bad configuration stops the start with a reason that names the key.
-module(autonomic_app).
-behaviour(application).

-export([start/2, stop/1]).

-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    Thresholds = application:get_env(autonomic, governor_thresholds, #{}),
    case autonomic:configure_governor(Thresholds) of
        ok ->
            autonomic_sup:start_link();
        {error, Reason} ->
            {error, {invalid_config, governor_thresholds, Reason}}
    end.

-spec stop(term()) -> ok.
stop(_State) ->
    ok.
