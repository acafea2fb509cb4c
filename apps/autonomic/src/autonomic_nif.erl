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

%% Ledger (autonomic_ledger)
-export([
    ledger_open/3,
    ledger_close/1,
    ledger_append/4,
    ledger_verify/1,
    ledger_get/2,
    ledger_tail/2,
    ledger_by_action/2,
    ledger_size/1,
    ledger_root/1,
    ledger_inclusion_proof/2,
    ledger_consistency_proof/2,
    ledger_info/1,
    ledger_list/0
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

%%% Ledger (native/autonomic_nif/src/ledger.rs). A handle is a resource reference; every function
%%% but ledger_open/3 also takes the name of an open ledger.

-spec ledger_open(term(), term(), term()) -> {ok, reference(), map()} | {error, term()}.
ledger_open(_Name, _Dir, _Fsync) -> erlang:nif_error(nif_not_loaded).

-spec ledger_close(term()) -> ok | {error, term()}.
ledger_close(_Ledger) -> erlang:nif_error(nif_not_loaded).

-spec ledger_append(term(), term(), term(), reference()) -> ok | {error, term()}.
ledger_append(_Ledger, _Action, _Result, _Ref) -> erlang:nif_error(nif_not_loaded).

-spec ledger_verify(term()) -> ok | {error, term()}.
ledger_verify(_Ledger) -> erlang:nif_error(nif_not_loaded).

-spec ledger_get(term(), term()) -> {ok, map()} | {error, term()}.
ledger_get(_Ledger, _Id) -> erlang:nif_error(nif_not_loaded).

-spec ledger_tail(term(), term()) -> {ok, [map()]} | {error, term()}.
ledger_tail(_Ledger, _N) -> erlang:nif_error(nif_not_loaded).

-spec ledger_by_action(term(), term()) -> {ok, [map()]} | {error, term()}.
ledger_by_action(_Ledger, _Action) -> erlang:nif_error(nif_not_loaded).

-spec ledger_size(term()) -> non_neg_integer() | {error, term()}.
ledger_size(_Ledger) -> erlang:nif_error(nif_not_loaded).

-spec ledger_root(term()) -> {non_neg_integer(), binary()} | {error, term()}.
ledger_root(_Ledger) -> erlang:nif_error(nif_not_loaded).

-spec ledger_inclusion_proof(term(), term()) -> {ok, map()} | {error, term()}.
ledger_inclusion_proof(_Ledger, _Seq) -> erlang:nif_error(nif_not_loaded).

-spec ledger_consistency_proof(term(), term()) -> {ok, map()} | {error, term()}.
ledger_consistency_proof(_Ledger, _OldSize) -> erlang:nif_error(nif_not_loaded).

-spec ledger_info(term()) -> {ok, map()} | {error, term()}.
ledger_info(_Ledger) -> erlang:nif_error(nif_not_loaded).

-spec ledger_list() -> [{atom(), reference()}].
ledger_list() -> erlang:nif_error(nif_not_loaded).
