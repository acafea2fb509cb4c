%%% @doc A pure Erlang model of the governor table in DESIGN.md section 3, written from the table
%%% independently of the Rust code. The PropEr test checks the NIF against it; the benchmark uses
%%% it as the "plain Erlang" alternative (a function over a map held by the caller, and the body
%%% of a gen_statem per tenant).
-module(governor_model).

-export([new/0, step/3, row/4, default_thresholds/0]).
-export_type([gov/0, thresholds/0]).

-type thresholds() :: #{
    warn := number(),
    intervene := number(),
    recover := number(),
    calm := number(),
    refuse := number(),
    sustain := pos_integer()
}.
-type gov() :: #{state := atom(), consecutive_high := non_neg_integer(), transitions := non_neg_integer()}.

-spec default_thresholds() -> thresholds().
default_thresholds() ->
    #{warn => 75, intervene => 90, recover => 70, calm => 75, refuse => 95, sustain => 3}.

-spec new() -> gov().
new() -> #{state => stable, consecutive_high => 0, transitions => 0}.

%% @doc Applies one (valid) event to a governor; every event counts as a transition.
-spec step(gov(), term(), thresholds()) -> {gov(), term()}.
step(#{state := S, consecutive_high := N, transitions := T} = Gov, Event, Th) ->
    {S1, N1, Action} = row(S, N, Event, Th),
    {Gov#{state := S1, consecutive_high := N1, transitions := T + 1}, Action}.

%% @doc The table, row by row: (state, consecutive_high, event) to (state, counter, action).
-spec row(atom(), non_neg_integer(), term(), thresholds()) -> {atom(), non_neg_integer(), term()}.
row(_, _, reset, _) -> {stable, 0, none};
row(stable, N, {signal, _, V}, #{intervene := I, warn := W}) ->
    if
        V >= I -> {intervene, N, {throttle, 50}};
        V >= W -> {warn, 1, none};
        true -> {stable, N, none}
    end;
row(warn, N, {signal, _, V}, #{intervene := I, warn := W, recover := R, sustain := S}) ->
    if
        V >= I -> {intervene, N, {throttle, 50}};
        V >= W, N + 1 >= S -> {degrade, N + 1, {throttle, 25}};
        V >= W -> {warn, N + 1, none};
        V >= R -> {warn, N, none};
        true -> {stable, 0, none}
    end;
row(intervene, _, action_succeeded, _) -> {warn, 0, none};
row(intervene, N, action_failed, _) -> {degrade, N, pause};
row(intervene, N, {signal, _, V}, #{calm := C}) ->
    if
        V < C -> {warn, N, none};
        true -> {intervene, N, none}
    end;
row(degrade, N, {signal, _, V}, #{refuse := F, recover := R}) ->
    if
        V > F -> {refuse, N, {shed, 50}};
        V < R -> {intervene, N, none};
        true -> {degrade, N, none}
    end;
row(refuse, N, {signal, _, _}, _) -> {refuse, N, none};
row(S, N, Outcome, _) when Outcome =:= action_succeeded; Outcome =:= action_failed -> {S, N, none}.
