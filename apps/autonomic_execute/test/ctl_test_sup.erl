%%% @doc Real supervisors for the supervisor_controller tests, and the tree they are built into:
%%%
%%% ```
%%% Top (one_for_one)
%%%  |- MidA (one_for_one): w1, w2, w3
%%%  `- MidB (one_for_one): x1, x2
%%% '''
%%% Every worker ({@link ctl_test_worker}) writes `{Seq, Id, Pid}' into the node's log table when
%%% it starts, so a test sees the order in which children started.
-module(ctl_test_sup).
-behaviour(supervisor).

-export([start_tree/1, start_link/3, init/1, snapshot/1, log/0, clear_log/0, ensure_log/0]).

%% @doc Starts the tree with registered names `#{top, mid_a, mid_b}' (atoms), not linked to the
%% caller (it may be an erpc process); returns the top supervisor's pid.
start_tree(#{top := Top, mid_a := A, mid_b := B} = Names) ->
    ok = ensure_log(),
    Worker = fun(Id, Opts) -> #{id => Id, start => {ctl_test_worker, start_link, [Id, Opts]},
                                shutdown => maps:get(shutdown, Opts, 5000)} end,
    Mid = fun(Name, Children) ->
              #{id => Name, start => {?MODULE, start_link, [Name, one_for_one, Children]}, type => supervisor}
          end,
    SlowOpts = maps:get(slow, Names, #{}),
    MidA = [Worker(I, maps:get(I, SlowOpts, #{})) || I <- [w1, w2, w3]],
    MidB = [Worker(I, #{}) || I <- [x1, x2]],
    {ok, Pid} = start_link(Top, one_for_one, [Mid(A, MidA), Mid(B, MidB)]),
    true = unlink(Pid),
    Pid.

start_link(Name, Strategy, Children) ->
    supervisor:start_link({local, Name}, ?MODULE, {Strategy, Children}).

init({Strategy, Children}) ->
    {ok, {#{strategy => Strategy, intensity => 10, period => 10}, Children}}.

%% @doc Every pid of the tree: `#{top, mid_a, mid_b, w1, w2, w3, x1, x2}'.
snapshot(#{top := Top, mid_a := A, mid_b := B}) ->
    Kids = fun(S) -> [{Id, P} || {Id, P, _, _} <- supervisor:which_children(S)] end,
    maps:from_list([{top, whereis(Top)}, {mid_a, whereis(A)}, {mid_b, whereis(B)}] ++ Kids(A) ++ Kids(B)).

%% @doc The start log, oldest first.
log() ->
    lists:keysort(1, ets:tab2list(ctl_test_log)).

clear_log() ->
    true = ets:delete_all_objects(ctl_test_log),
    ok.

%% @doc Creates the log table, owned by a process that lives as long as the node.
ensure_log() ->
    case whereis(ctl_test_log_owner) of
        undefined ->
            Parent = self(),
            Pid = spawn(fun() ->
                            _ = ets:new(ctl_test_log, [named_table, public, ordered_set]),
                            Parent ! {self(), ready},
                            receive stop -> ok end
                        end),
            receive {Pid, ready} -> ok end,
            try register(ctl_test_log_owner, Pid) of
                true -> ok
            catch
                error:badarg -> exit(Pid, kill), ok
            end;
        _ ->
            ok
    end.
