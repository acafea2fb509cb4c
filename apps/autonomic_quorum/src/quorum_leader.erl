%%% @doc The leader's global name. Exactly one node among the members with quorum holds
%%% `autonomic_leader' in `global'; the MAPE-K coordinator and the failure handler run there.
%%%
%%% {@link quorum_manager} decides, this process carries it out so that a slow `global' (its
%%% registrations take a cluster-wide lock) never blocks the manager: the manager casts `claim'
%%% when it has quorum, nobody it reaches holds the name and {@link quorum_rules:choose_leader/2}
%%% picks its node; and `release' when the holder has lost quorum. The registered process is this
%%% one, so the name disappears with it: when the leader's node dies or is cut off, `global'
%%% drops the name on the other nodes and the next node in the rule claims it (re-election).
%%%
%%% `global' keeps one owner per name among connected nodes; only nodes with quorum claim, and
%%% {@link quorum_rules} allows quorum on one side of a split at most, so a partition never yields
%%% two leaders that later clash. Should two registrations still meet when nodes reconnect,
%%% {@link resolve/3} keeps the one on the node with the smaller name and tells the other.
-module(quorum_leader).
-behaviour(gen_server).

-export([start_link/0, name/0, claim/1, release/0, resolve/3]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(NAME, autonomic_leader).
-define(LOG, #{domain => [autonomic, quorum]}).

%% @doc Starts the leader process (from {@link autonomic_quorum_sup}).
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc The global name of the leader.
-spec name() -> atom().
name() -> ?NAME.

%% @doc Asks this node's leader process to take the name if nobody holds it (asynchronous).
-spec claim(non_neg_integer()) -> ok.
claim(Epoch) ->
    gen_server:cast(?MODULE, {claim, Epoch}).

%% @doc Asks this node's leader process to give the name up if it holds it (asynchronous).
-spec release() -> ok.
release() ->
    gen_server:cast(?MODULE, release).

%% @doc `global''s name resolution when two registrations of the name meet: keeps the process on
%% the node with the smaller name and sends the other `{global_name_conflict, Name, Kept}'.
-spec resolve(atom(), pid(), pid()) -> pid().
resolve(Name, Pid1, Pid2) ->
    {Keep, Drop} = case node(Pid1) =< node(Pid2) of
        true -> {Pid1, Pid2};
        false -> {Pid2, Pid1}
    end,
    Drop ! {global_name_conflict, Name, Keep},
    Keep.

%% @private
-spec init([]) -> {ok, #{}}.
init([]) ->
    ok = autonomic_metrics:set(autonomic_quorum_leader, #{}, 0),
    {ok, #{}}.

%% @private
-spec handle_call(term(), gen_server:from(), map()) -> {reply, {error, unknown_call}, map()}.
handle_call(_Req, _From, St) ->
    {reply, {error, unknown_call}, St}.

%% @private
-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast({claim, Epoch}, St) ->
    case global:whereis_name(?NAME) of
        undefined ->
            case global:register_name(?NAME, self(), fun ?MODULE:resolve/3) of
                yes ->
                    ok = autonomic_metrics:set(autonomic_quorum_leader, #{}, 1),
                    _ = autonomic_events:publish(leader_elected, #{leader => node(), epoch => Epoch}),
                    logger:notice("this node leads (epoch ~b)", [Epoch], ?LOG);
                no ->
                    ok
            end;
        _ ->
            ok
    end,
    {noreply, St};
handle_cast(release, St) ->
    case global:whereis_name(?NAME) =:= self() of
        true ->
            _ = global:unregister_name(?NAME),
            ok = autonomic_metrics:set(autonomic_quorum_leader, #{}, 0),
            logger:notice("no longer leading: no quorum here", [], ?LOG);
        false ->
            ok
    end,
    {noreply, St};
handle_cast(_Msg, St) ->
    {noreply, St}.

%% @private
-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({global_name_conflict, Name, Kept}, St) ->
    ok = autonomic_metrics:set(autonomic_quorum_leader, #{}, 0),
    logger:warning("~p is held by ~p on ~p after nodes reconnected; this node does not lead",
                   [Name, Kept, node(Kept)], ?LOG),
    {noreply, St};
handle_info(_Msg, St) ->
    {noreply, St}.
