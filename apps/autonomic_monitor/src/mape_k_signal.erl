%%% @doc Signal ingest rules, as pure functions: validation, normalization to 0..100 and the
%%% deterministic deduplication id of a raw event `#{tenant, metric, value, timestamp}'.
%%%
%%% <ul>
%%%   <li>`tenant': a binary of 1 to 256 bytes;</li>
%%%   <li>`metric': one of the known metric names, as an atom or a binary (binaries are matched
%%%       against the known names, never turned into atoms);</li>
%%%   <li>`value': a number within the metric's bounds;</li>
%%%   <li>`timestamp': milliseconds since the Unix epoch, an integer, not negative and at most
%%%       `max_future_ms' (1 hour) ahead of this node's clock.</li>
%%% </ul>
%%% Other keys are ignored. The value is then normalized onto 0..100 by the metric's scale
%%% (`(V - Lo) / (Hi - Lo) * 100', clamped), which is what the governor takes.
%%%
%%% The id is SHA-256 over a canonical encoding of tenant, metric, value (as a 64-bit float, so
%%% `5' and `5.0' are the same reading) and the 5-second window the timestamp falls in. It is the
%%% same on every node and every OTP version: two reports of the same reading within one window
%%% are one signal.
-module(mape_k_signal).

-export([default_metrics/0, metrics/1, validate/3, id/2, reason_label/1]).

-export_type([raw/0, signal/0, metric_spec/0, reason/0]).

-type raw() :: #{tenant := binary(), metric := atom() | binary(), value := number(),
                 timestamp := integer(), atom() => term()}.
-type signal() :: #{tenant := binary(), metric := atom(), value := number(),
                    timestamp := integer(), normalized := float()}.
-type metric_spec() :: #{bounds := {number(), number()}, scale := {number(), number()}}.
-type reason() ::
    not_a_map
    | {missing_field, tenant | metric | value | timestamp}
    | {invalid_tenant, term()}
    | {unknown_metric, term()}
    | {invalid_value, term()}
    | {value_out_of_bounds, number(), {number(), number()}}
    | {invalid_timestamp, term()}
    | {timestamp_in_future, integer()}.

-define(MAX_TENANT, 256).
-define(FIELDS, [tenant, metric, value, timestamp]).

%% @doc The metrics known out of the box. `bounds' is what a value may be (anything else is
%% rejected); `scale' is the range mapped onto 0..100 (values beyond it clamp to 0 or 100).
-spec default_metrics() -> #{atom() => metric_spec()}.
default_metrics() ->
    #{
        cpu => #{bounds => {0, 100}, scale => {0, 100}},                 % percent
        memory => #{bounds => {0, 100}, scale => {0, 100}},              % percent
        disk => #{bounds => {0, 100}, scale => {0, 100}},                % percent
        connections => #{bounds => {0, 100}, scale => {0, 100}},         % percent of the pool
        error_rate => #{bounds => {0, 1}, scale => {0, 1}},              % fraction of requests
        latency_ms => #{bounds => {0, 3600000}, scale => {0, 1000}},     % 1 s and more is 100
        queue_depth => #{bounds => {0, 1.0e9}, scale => {0, 10000}}      % 10,000 and more is 100
    }.

%% @doc The known metrics: the defaults with `Overrides' merged over them. Every spec must have
%% `Lo < Hi' for both bounds and scale; `{error, {bad_metric_spec, Name, Spec}}' otherwise.
-spec metrics(#{atom() => metric_spec()}) -> {ok, #{atom() => metric_spec()}} | {error, term()}.
metrics(Overrides) when is_map(Overrides) ->
    All = maps:merge(default_metrics(), Overrides),
    case [{N, S} || {N, S} <- maps:to_list(All), not (is_atom(N) andalso valid_spec(S))] of
        [] -> {ok, All};
        [{N, S} | _] -> {error, {bad_metric_spec, N, S}}
    end;
metrics(Other) ->
    {error, {bad_metric_spec, Other}}.

%% @doc Validates and normalizes one raw event against the known metrics at `NowMs' (system
%% time). The first problem found is the reason, checking fields in the order tenant, metric,
%% value, timestamp.
-spec validate(term(), #{atom() => metric_spec()}, #{now_ms := integer(), max_future_ms := non_neg_integer()}) ->
    {ok, signal()} | {error, reason()}.
validate(Raw, _Metrics, _Opts) when not is_map(Raw) ->
    {error, not_a_map};
validate(Raw, Metrics, #{now_ms := Now, max_future_ms := MaxFuture}) ->
    case [F || F <- ?FIELDS, not is_map_key(F, Raw)] of
        [F | _] ->
            {error, {missing_field, F}};
        [] ->
            #{tenant := T, metric := M, value := V, timestamp := Ts} = Raw,
            try
                ok = check(tenant(T)),
                Name = check(metric(M, Metrics)),
                #{bounds := Bounds, scale := {Lo, Hi}} = maps:get(Name, Metrics),
                ok = check(value(V, Bounds)),
                ok = check(timestamp(Ts, Now, MaxFuture)),
                Norm = min(100.0, max(0.0, (V - Lo) / (Hi - Lo) * 100)),
                {ok, #{tenant => T, metric => Name, value => V, timestamp => Ts, normalized => Norm}}
            catch
                throw:{reject, Reason} -> {error, Reason}
            end
    end.

%% @doc The deduplication id (32 bytes) of a valid signal, for windows of `WindowMs'.
-spec id(signal() | raw(), pos_integer()) -> binary().
id(#{tenant := T, metric := M, value := V, timestamp := Ts}, WindowMs) ->
    MBin = if is_atom(M) -> atom_to_binary(M, utf8); true -> M end,
    Window = Ts div WindowMs,
    crypto:hash(sha256, <<"autonomic-signal-v1",
                          (byte_size(T)):16, T/binary,
                          (byte_size(MBin)):16, MBin/binary,
                          (float(V)):64/float,
                          Window:64/signed>>).

%% @doc The label under which a rejection is counted (the reason's first element). Also takes
%% the ingest's own `{governor_error, Why}'.
-spec reason_label(reason() | {governor_error, term()}) -> atom().
reason_label(R) when is_atom(R) -> R;
reason_label(R) when is_tuple(R) -> element(1, R).

%%% Internals

check(ok) -> ok;
check({ok, X}) -> X;
check({error, Reason}) -> throw({reject, Reason}).

tenant(T) when is_binary(T), byte_size(T) >= 1, byte_size(T) =< ?MAX_TENANT -> ok;
tenant(T) -> {error, {invalid_tenant, T}}.

metric(M, Metrics) when is_atom(M) ->
    case is_map_key(M, Metrics) of
        true -> {ok, M};
        false -> {error, {unknown_metric, M}}
    end;
metric(M, Metrics) when is_binary(M) ->
    case [N || N <- maps:keys(Metrics), atom_to_binary(N, utf8) =:= M] of
        [N] -> {ok, N};
        [] -> {error, {unknown_metric, M}}
    end;
metric(M, _Metrics) ->
    {error, {unknown_metric, M}}.

value(V, {Min, Max}) when is_number(V) ->
    case V >= Min andalso V =< Max of
        true -> ok;
        false -> {error, {value_out_of_bounds, V, {Min, Max}}}
    end;
value(V, _Bounds) ->
    {error, {invalid_value, V}}.

timestamp(Ts, Now, MaxFuture) when is_integer(Ts), Ts >= 0 ->
    case Ts - Now =< MaxFuture of
        true -> ok;
        false -> {error, {timestamp_in_future, Ts}}
    end;
timestamp(Ts, _Now, _MaxFuture) ->
    {error, {invalid_timestamp, Ts}}.

valid_spec(#{bounds := {BMin, BMax}, scale := {Lo, Hi}}) ->
    lists:all(fun is_number/1, [BMin, BMax, Lo, Hi]) andalso BMin < BMax andalso Lo < Hi;
valid_spec(_) ->
    false.
