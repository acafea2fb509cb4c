%%% @doc Keeps the actuator's record of the reversible actions in force, in an ETS table this
%%% process owns and the actuator writes (it is the only writer: it handles one action or
%%% rollback at a time). It is a process of its own, started before the settings it records, so
%%% that a crash of the actuator loses nothing and a crash of a settings owner does not erase the
%%% record of the others (entries a restarted settings owner no longer matches are not in force:
%%% the actuator compares every entry with the setting's current value).
%%%
%%% Rows: `{Slot, [Entry]}', a stack per setting (the latest action first), and
%%% `{{receipt, Id}, Slot}'. A slot is `{throttle, Tenant}', `{pause, Tenant}', `shed',
%%% `degrade' or `{backend, Backend}'.
-module(autonomic_actuator_store).
-behaviour(gen_server).

-export([start_link/0, push/2, pop/1, top/1, slot_of/1, slots/0]).
-export([init/1, handle_call/3, handle_cast/2]).

-define(TAB, autonomic_actuator_inforce).

%% @doc Starts the owner of the table (from `autonomic_actuation_sup').
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Records `Entry' (a map with at least `receipt') as the latest action on `Slot'.
-spec push(term(), #{receipt := binary(), atom() => term()}) -> ok.
push(Slot, #{receipt := Id} = Entry) ->
    true = ets:insert(?TAB, [{Slot, [Entry | stack(Slot)]}, {{receipt, Id}, Slot}]),
    ok.

%% @doc Removes the latest action on `Slot'.
-spec pop(term()) -> ok.
pop(Slot) ->
    case stack(Slot) of
        [#{receipt := Id}] ->
            true = ets:delete(?TAB, Slot),
            true = ets:delete(?TAB, {receipt, Id});
        [#{receipt := Id} | Rest] ->
            true = ets:insert(?TAB, {Slot, Rest}),
            true = ets:delete(?TAB, {receipt, Id});
        [] ->
            true
    end,
    ok.

%% @doc The latest action on `Slot', if any.
-spec top(term()) -> {ok, map()} | none.
top(Slot) ->
    case stack(Slot) of
        [Entry | _] -> {ok, Entry};
        [] -> none
    end.

%% @doc The slot of the receipt `Id' while its action is recorded.
-spec slot_of(binary()) -> {ok, term()} | none.
slot_of(Id) ->
    case ets:lookup(?TAB, {receipt, Id}) of
        [{_, Slot}] -> {ok, Slot};
        [] -> none
    end.

%% @doc Every slot with its stack.
-spec slots() -> [{term(), [map()]}].
slots() ->
    [{S, E} || {S, E} <- ets:tab2list(?TAB), is_list(E)].

stack(Slot) ->
    case ets:lookup(?TAB, Slot) of
        [{_, Stack}] -> Stack;
        [] -> []
    end.

%% @private
-spec init([]) -> {ok, #{}}.
init([]) ->
    _ = ets:new(?TAB, [named_table, public, set, {read_concurrency, true}]),
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, {error, unknown_call}, map()}.
handle_call(_Req, _From, S) ->
    {reply, {error, unknown_call}, S}.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, S) ->
    {noreply, S}.
