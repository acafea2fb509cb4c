%%% @doc Node-local metrics registry, rendered in the Prometheus text format (version 0.0.4).
%%%
%%% Counters, gauges and histograms live in one public ETS table with write concurrency, so
%%% updating a metric is one `ets:update_counter/4' or `ets:insert/2' from the calling process,
%%% with no process hop. Values computed at scrape time (a queue length, a table size) come from
%%% collectors registered with {@link register_collector/2}.
%%%
%%% Every metric is declared once with {@link declare/3} (idempotent; a second declaration with a
%%% different type is an error). Names are atoms and should start with `autonomic_'. Labels are a
%%% map from atoms to atoms, binaries, strings or numbers.
%%%
%%% This process only owns the table; a crash of a caller never loses metrics, and a restart of
%%% this process starts from zero (metrics are not durable, as in Prometheus client libraries).
-module(autonomic_metrics).
-behaviour(gen_server).

-export([start_link/0]).
-export([declare/3, inc/2, inc/3, set/3, observe/3, value/2]).
-export([register_collector/2, unregister_collector/1, render/0]).
-export([init/1, handle_call/3, handle_cast/2]).

-export_type([name/0, labels/0, type/0, sample/0]).

-define(TAB, ?MODULE).
-define(DEFAULT_BUCKETS, [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30]).
%% Histogram sums are kept as integers (update_counter does not take floats): micro-units.
-define(SUM_SCALE, 1000000).

-type name() :: atom().
-type labels() :: #{atom() => atom() | binary() | string() | number()}.
-type type() :: counter | gauge | histogram | {histogram, [number()]}.
-type sample() :: {labels(), number()}.
-type collected() :: {name(), counter | gauge, Help :: iodata(), [sample()]}.

%%% API

%% @doc Starts the owner of the metrics table (from `autonomic_sup').
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Declares a metric. `histogram' uses default buckets (seconds, 1 ms to 30 s);
%% `{histogram, Buckets}' takes strictly increasing upper bounds.
-spec declare(name(), type(), iodata()) -> ok | {error, {already_declared, name(), type()} | {bad_metric, term()}}.
declare(Name, histogram, Help) ->
    declare(Name, {histogram, ?DEFAULT_BUCKETS}, Help);
declare(Name, Type, Help) when is_atom(Name) ->
    case valid_type(Type) andalso valid_name(Name) of
        true ->
            case ets:insert_new(?TAB, {{meta, Name}, Type, iolist_to_binary(Help)}) of
                true -> ok;
                false ->
                    case ets:lookup(?TAB, {meta, Name}) of
                        [{_, Type, _}] -> ok;
                        [{_, Other, _}] -> {error, {already_declared, Name, Other}}
                    end
            end;
        false ->
            {error, {bad_metric, {Name, Type}}}
    end;
declare(Name, Type, _Help) ->
    {error, {bad_metric, {Name, Type}}}.

%% @doc Adds one to a counter.
-spec inc(name(), labels()) -> ok.
inc(Name, Labels) ->
    inc(Name, Labels, 1).

%% @doc Adds `N' (a non-negative integer) to a counter.
-spec inc(name(), labels(), non_neg_integer()) -> ok.
inc(Name, Labels, N) when is_integer(N), N >= 0 ->
    Key = {Name, Labels},
    _ = ets:update_counter(?TAB, Key, {2, N}, {Key, 0}),
    ok.

%% @doc Sets a gauge.
-spec set(name(), labels(), number()) -> ok.
set(Name, Labels, Value) when is_number(Value) ->
    true = ets:insert(?TAB, {{Name, Labels}, Value}),
    ok.

%% @doc Records one observation (in seconds, by convention) in a histogram.
-spec observe(name(), labels(), number()) -> ok | {error, {not_a_histogram, name()}}.
observe(Name, Labels, Value) when is_number(Value) ->
    case ets:lookup(?TAB, {meta, Name}) of
        [{_, {histogram, Buckets}, _}] ->
            Key = {Name, Labels},
            Le = length(lists:takewhile(fun(B) -> Value > B end, Buckets)),
            %% Element 2: count, 3: scaled sum, 4..: per-bucket counts (non-cumulative).
            Default = list_to_tuple([Key, 0, 0 | [0 || _ <- Buckets]]),
            Ops = [{2, 1}, {3, round(Value * ?SUM_SCALE)} | [{4 + Le, 1} || Le < length(Buckets)]],
            _ = ets:update_counter(?TAB, Key, Ops, Default),
            ok;
        _ ->
            {error, {not_a_histogram, Name}}
    end.

%% @doc Current value of a counter or gauge (0 when never touched); for a histogram, its count.
-spec value(name(), labels()) -> number().
value(Name, Labels) ->
    case ets:lookup(?TAB, {Name, Labels}) of
        [] -> 0;
        [Row] -> element(2, Row)
    end.

%% @doc Registers (or replaces) a collector called at every scrape. It returns
%% `[{Name, counter | gauge, Help, [{Labels, Value}]}]'; a collector that crashes or returns
%% garbage is skipped and logged, never breaking the scrape.
-spec register_collector(term(), fun(() -> [collected()])) -> ok.
register_collector(Id, Fun) when is_function(Fun, 0) ->
    true = ets:insert(?TAB, {{collector, Id}, Fun}),
    ok.

%% @doc Removes a collector.
-spec unregister_collector(term()) -> ok.
unregister_collector(Id) ->
    true = ets:delete(?TAB, {collector, Id}),
    ok.

%% @doc Renders every metric in the Prometheus text exposition format.
-spec render() -> iodata().
render() ->
    Rows = ets:tab2list(?TAB),
    Metas = lists:sort([{Name, Type, Help} || {{meta, Name}, Type, Help} <- Rows]),
    Samples = lists:foldl(
        fun
            ({{meta, _}, _, _}, Acc) -> Acc;
            ({{collector, _}, _}, Acc) -> Acc;
            (Row, Acc) ->
                {Name, _Labels} = element(1, Row),
                maps:update_with(Name, fun(L) -> [Row | L] end, [Row], Acc)
        end,
        #{},
        Rows
    ),
    Declared = [Name || {Name, _, _} <- Metas],
    %% Samples of a metric nobody declared are still shown, as `untyped', never dropped.
    Undeclared = [{Name, untyped, <<"undeclared metric">>} || Name <- maps:keys(maps:without(Declared, Samples))],
    Own = [render_family(Name, Type, Help, lists:sort(maps:get(Name, Samples, [])))
           || {Name, Type, Help} <- Metas ++ lists:sort(Undeclared)],
    Collected = [render_collected(C) || {{collector, Id}, Fun} <- Rows, C <- run_collector(Id, Fun)],
    [Own, Collected].

%%% gen_server: owns the table

%% @private
-spec init([]) -> {ok, #{}}.
init([]) ->
    _ = ets:new(?TAB, [named_table, public, set, {write_concurrency, true}, {read_concurrency, true}]),
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), State) -> {reply, {error, unknown_call}, State}.
handle_call(_Req, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast(term(), State) -> {noreply, State}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%%% Rendering

run_collector(Id, Fun) ->
    try Fun() of
        List when is_list(List) ->
            [C || C = {N, T, _, S} <- List, is_atom(N), (T =:= counter orelse T =:= gauge), is_list(S)];
        Other ->
            logger:warning("autonomic_metrics: collector ~p returned ~p", [Id, Other]),
            []
    catch
        Class:Reason ->
            logger:warning("autonomic_metrics: collector ~p crashed: ~p:~p", [Id, Class, Reason]),
            []
    end.

render_collected({Name, Type, Help, Samples}) ->
    header(Name, Type, Help) ++ [sample_line(Name, L, V) || {L, V} <- Samples, is_map(L), is_number(V)].

render_family(Name, {histogram, Buckets}, Help, Rows) ->
    [header(Name, histogram, Help) | [histogram_lines(Name, Buckets, Row) || Row <- Rows]];
render_family(Name, Type, Help, Rows) ->
    [header(Name, Type, Help) | [sample_line(Name, Labels, V) || {{_, Labels}, V} <- Rows]].

header(Name, Type, Help) ->
    ["# HELP ", atom_to_list(Name), " ", escape_help(Help), "\n",
     "# TYPE ", atom_to_list(Name), " ", atom_to_list(Type), "\n"].

histogram_lines(Name, Buckets, Row) ->
    [{_, Labels}, Count, Sum | PerBucket] = tuple_to_list(Row),
    Bucket = list_to_atom(atom_to_list(Name) ++ "_bucket"),
    {Lines, _} = lists:mapfoldl(
        fun({Le, N}, Acc) ->
            {sample_line(Bucket, Labels#{le => format_number(Le)}, Acc + N), Acc + N}
        end,
        0,
        lists:zip(Buckets, PerBucket)
    ),
    [Lines,
     sample_line(Bucket, Labels#{le => <<"+Inf">>}, Count),
     sample_line(list_to_atom(atom_to_list(Name) ++ "_sum"), Labels, Sum / ?SUM_SCALE),
     sample_line(list_to_atom(atom_to_list(Name) ++ "_count"), Labels, Count)].

sample_line(Name, Labels, Value) ->
    [atom_to_list(Name), labels(Labels), " ", format_number(Value), "\n"].

labels(Labels) when map_size(Labels) =:= 0 ->
    [];
labels(Labels) ->
    Pairs = [[atom_to_list(K), "=\"", escape_label(to_text(V)), "\""] || {K, V} <- lists:sort(maps:to_list(Labels))],
    ["{", lists:join(",", Pairs), "}"].

to_text(V) when is_binary(V) -> V;
to_text(V) when is_atom(V) -> atom_to_binary(V);
to_text(V) when is_integer(V) -> integer_to_binary(V);
to_text(V) when is_float(V) -> format_number(V);
to_text(V) when is_list(V) -> unicode:characters_to_binary(V).

format_number(V) when is_integer(V) -> integer_to_binary(V);
format_number(V) when is_float(V) -> float_to_binary(V, [short]).

escape_label(Bin) ->
    binary:replace(binary:replace(binary:replace(Bin, <<"\\">>, <<"\\\\">>, [global]),
                                  <<"\"">>, <<"\\\"">>, [global]),
                   <<"\n">>, <<"\\n">>, [global]).

escape_help(Help) ->
    binary:replace(binary:replace(iolist_to_binary(Help), <<"\\">>, <<"\\\\">>, [global]),
                   <<"\n">>, <<"\\n">>, [global]).

valid_type(counter) -> true;
valid_type(gauge) -> true;
valid_type({histogram, [_ | _] = B}) -> lists:all(fun is_number/1, B) andalso strictly_increasing(B);
valid_type(_) -> false.

strictly_increasing([A, B | T]) -> A < B andalso strictly_increasing([B | T]);
strictly_increasing(_) -> true.

valid_name(Name) ->
    re:run(atom_to_list(Name), "^[a-zA-Z_:][a-zA-Z0-9_:]*$", [{capture, none}]) =:= match.
