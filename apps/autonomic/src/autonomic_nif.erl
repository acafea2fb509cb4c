%%% @doc The NIF bridge of autonomic: `on_load' and `nif_error' stubs, nothing else.
%%%
%%% The functions here are implemented in Rust (`native/autonomic_nif'); each validates its
%%% arguments and returns `{error, Reason}' for bad input rather than raising. Application code
%%% uses the public modules (`autonomic', ...), never this one.
-module(autonomic_nif).

-export([
    governor_transition/2,
    governor_info/1,
    governor_forget/1,
    governor_count/0,
    governor_state_counts/0,
    governor_thresholds/0,
    governor_configure/1
]).

-on_load(load/0).

-define(LIB, "libautonomic_nif").

%% @private Loads the shared library from the application's priv directory.
-spec load() -> ok | {error, term()}.
load() ->
    Path = filename:join(priv_dir(), ?LIB),
    case erlang:load_nif(Path, 0) of
        ok ->
            ok;
        {error, {Reason, Text}} = Error ->
            logger:error(
                "autonomic: cannot load NIF library ~ts: ~p (~ts)",
                [Path, Reason, Text],
                #{domain => [autonomic]}
            ),
            Error
    end.

-spec priv_dir() -> file:filename().
priv_dir() ->
    case code:priv_dir(autonomic) of
        {error, bad_name} ->
            %% Not loaded as part of an application (an escript, a bare erl -pa): look beside ebin.
            filename:join(filename:dirname(filename:dirname(code:which(?MODULE))), "priv");
        Dir ->
            Dir
    end.

-spec governor_transition(term(), term()) ->
    {ok, autonomic:governor_state(), autonomic:governor_action()} | {error, term()}.
governor_transition(_Tenant, _Event) -> erlang:nif_error(nif_not_loaded).

-spec governor_info(term()) -> {ok, autonomic:governor_info()} | {error, not_found | invalid_tenant}.
governor_info(_Tenant) -> erlang:nif_error(nif_not_loaded).

-spec governor_forget(term()) -> ok | {error, invalid_tenant}.
governor_forget(_Tenant) -> erlang:nif_error(nif_not_loaded).

-spec governor_count() -> non_neg_integer().
governor_count() -> erlang:nif_error(nif_not_loaded).

-spec governor_state_counts() -> #{autonomic:governor_state() => non_neg_integer()}.
governor_state_counts() -> erlang:nif_error(nif_not_loaded).

-spec governor_thresholds() -> autonomic:governor_thresholds().
governor_thresholds() -> erlang:nif_error(nif_not_loaded).

-spec governor_configure(term()) -> ok | {error, {invalid_thresholds, term()}}.
governor_configure(_Thresholds) -> erlang:nif_error(nif_not_loaded).
