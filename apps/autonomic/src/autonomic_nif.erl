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
    governor_set_fence/1,
    governor_fenced/0,
    governor_state_counts/0,
    governor_thresholds/0,
    governor_configure/1
]).

%%% Knowledge base (native/autonomic_nif/src/kb.rs). Application code uses `autonomic_kb'.
%%% Searches and inserts answer `dirty' or `busy' instead of doing work that does not fit a
%%% normal scheduler; the `_dirty' variants do the same work on a dirty scheduler.

-export([
    kb_new/1, kb_open/3, kb_insert/3, kb_insert_dirty/3, kb_merge/3, kb_flush/1, kb_compact/1,
    kb_clear/2, kb_adopt_epoch/2, kb_prune/2, kb_import/3, kb_export/2,
    kb_similar/4, kb_similar_dirty/4, kb_recommend/3, kb_recommend_dirty/3,
    kb_success_rate/2, kb_effectiveness/2, kb_effectiveness_dirty/2,
    kb_get/2, kb_size/1, kb_info/1, kb_digest/1, kb_sync_diff/2, kb_sync_missing/3, kb_lines/2
]).

-type kb_handle() :: reference().
-export_type([kb_handle/0]).

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

%% Resilience policy: the Turtle import (autonomic_policy)
-export([policy_from_turtle/1]).

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

-spec governor_set_fence(boolean()) -> ok.
governor_set_fence(_Up) -> erlang:nif_error(nif_not_loaded).

-spec governor_fenced() -> boolean().
governor_fenced() -> erlang:nif_error(nif_not_loaded).

-spec governor_state_counts() -> #{autonomic:governor_state() => non_neg_integer()}.
governor_state_counts() -> erlang:nif_error(nif_not_loaded).

-spec governor_thresholds() -> autonomic:governor_thresholds().
governor_thresholds() -> erlang:nif_error(nif_not_loaded).

-spec governor_configure(term()) -> ok | {error, {invalid_thresholds, term()}}.
governor_configure(_Thresholds) -> erlang:nif_error(nif_not_loaded).

%%% Knowledge base stubs

-spec kb_new(map()) -> {ok, kb_handle()} | {error, term()}.
kb_new(_Opts) -> erlang:nif_error(nif_not_loaded).

-spec kb_open(binary(), map(), integer()) -> {ok, kb_handle(), map()} | {error, term()}.
kb_open(_Dir, _Opts, _NowMs) -> erlang:nif_error(nif_not_loaded).

-spec kb_insert(kb_handle(), map(), integer()) ->
    {added, binary(), binary()} | {duplicate, binary()} | busy | {error, term()}.
kb_insert(_H, _Failure, _NowMs) -> erlang:nif_error(nif_not_loaded).

-spec kb_insert_dirty(kb_handle(), map(), integer()) ->
    {added, binary(), binary()} | {duplicate, binary()} | {error, term()}.
kb_insert_dirty(_H, _Failure, _NowMs) -> erlang:nif_error(nif_not_loaded).

-spec kb_merge(kb_handle(), binary(), integer()) -> {ok, map()} | {error, term()}.
kb_merge(_H, _Lines, _NowMs) -> erlang:nif_error(nif_not_loaded).

-spec kb_flush(kb_handle()) -> {ok, #{lines := non_neg_integer(), snapshot := boolean()}} | {error, term()}.
kb_flush(_H) -> erlang:nif_error(nif_not_loaded).

-spec kb_compact(kb_handle()) -> ok | {error, term()}.
kb_compact(_H) -> erlang:nif_error(nif_not_loaded).

-spec kb_clear(kb_handle(), integer()) -> {ok, integer()} | {error, term()}.
kb_clear(_H, _NowMs) -> erlang:nif_error(nif_not_loaded).

-spec kb_adopt_epoch(kb_handle(), integer()) -> {ok, non_neg_integer()} | {error, term()}.
kb_adopt_epoch(_H, _Epoch) -> erlang:nif_error(nif_not_loaded).

-spec kb_prune(kb_handle(), integer()) -> {ok, non_neg_integer()} | {error, term()}.
kb_prune(_H, _NowMs) -> erlang:nif_error(nif_not_loaded).

-spec kb_import(kb_handle(), binary(), integer()) -> {ok, map(), [binary()]} | {error, term()}.
kb_import(_H, _Path, _NowMs) -> erlang:nif_error(nif_not_loaded).

-spec kb_export(kb_handle(), binary()) -> {ok, non_neg_integer()} | {error, term()}.
kb_export(_H, _Path) -> erlang:nif_error(nif_not_loaded).

-spec kb_similar(kb_handle(), term(), term(), term()) ->
    [{float(), autonomic_kb:failure()}] | dirty | {error, term()}.
kb_similar(_H, _Symptoms, _Threshold, _Limit) -> erlang:nif_error(nif_not_loaded).

-spec kb_similar_dirty(kb_handle(), term(), term(), term()) ->
    [{float(), autonomic_kb:failure()}] | {error, term()}.
kb_similar_dirty(_H, _Symptoms, _Threshold, _Limit) -> erlang:nif_error(nif_not_loaded).

-spec kb_recommend(kb_handle(), term(), term()) -> [autonomic_kb:recommendation()] | dirty | {error, term()}.
kb_recommend(_H, _Symptoms, _Threshold) -> erlang:nif_error(nif_not_loaded).

-spec kb_recommend_dirty(kb_handle(), term(), term()) -> [autonomic_kb:recommendation()] | {error, term()}.
kb_recommend_dirty(_H, _Symptoms, _Threshold) -> erlang:nif_error(nif_not_loaded).

-spec kb_success_rate(kb_handle(), term()) -> autonomic_kb:success_rate() | {error, term()}.
kb_success_rate(_H, _FailureType) -> erlang:nif_error(nif_not_loaded).

-spec kb_effectiveness(kb_handle(), term()) ->
    autonomic_kb:effectiveness() | #{autonomic_kb:strategy() => autonomic_kb:effectiveness()} | dirty | {error, term()}.
kb_effectiveness(_H, _Which) -> erlang:nif_error(nif_not_loaded).

-spec kb_effectiveness_dirty(kb_handle(), term()) ->
    autonomic_kb:effectiveness() | #{autonomic_kb:strategy() => autonomic_kb:effectiveness()} | {error, term()}.
kb_effectiveness_dirty(_H, _Which) -> erlang:nif_error(nif_not_loaded).

-spec kb_get(kb_handle(), term()) -> {ok, autonomic_kb:failure()} | {error, term()}.
kb_get(_H, _Id) -> erlang:nif_error(nif_not_loaded).

-spec kb_size(kb_handle()) -> non_neg_integer() | {error, invalid_handle}.
kb_size(_H) -> erlang:nif_error(nif_not_loaded).

-spec kb_info(kb_handle()) -> map() | {error, invalid_handle}.
kb_info(_H) -> erlang:nif_error(nif_not_loaded).

-spec kb_digest(kb_handle()) -> {integer(), binary()} | {error, invalid_handle}.
kb_digest(_H) -> erlang:nif_error(nif_not_loaded).

-spec kb_sync_diff(kb_handle(), binary()) -> {ok, [0..1023], [binary()]} | {error, term()}.
kb_sync_diff(_H, _PeerDigest) -> erlang:nif_error(nif_not_loaded).

-spec kb_sync_missing(kb_handle(), [0..1023], [binary()]) -> {ok, [binary()], [binary()]} | {error, term()}.
kb_sync_missing(_H, _Buckets, _PeerIds) -> erlang:nif_error(nif_not_loaded).

-spec kb_lines(kb_handle(), [binary()]) -> {ok, [binary()]} | {error, term()}.
kb_lines(_H, _Ids) -> erlang:nif_error(nif_not_loaded).
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

%%% Resilience policy (native/autonomic_nif/src/policy.rs). Application code uses
%%% `autonomic_policy'. Runs on a dirty CPU scheduler; the document is at most 1 MiB.

-spec policy_from_turtle(term()) -> {ok, term(), [autonomic_policy:problem()]} | {error, [autonomic_policy:problem()]}.
policy_from_turtle(_Turtle) -> erlang:nif_error(nif_not_loaded).
