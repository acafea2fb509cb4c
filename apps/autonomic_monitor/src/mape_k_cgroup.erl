%%% @doc The memory limit and usage of the cgroup this node runs in (cgroup v2, or v1's memory
%%% controller). `memsup' reports the host's memory, which is the wrong denominator in a
%%% container: the kernel kills the VM at the cgroup's limit, however much the host has.
%%%
%%% The node's cgroup path comes from `/proc/self/cgroup'. v2: the smallest `memory.max' of the
%%% cgroup and its ancestors (a parent's limit binds its children too), usage from
%%% `memory.current'. v1: `hierarchical_memory_limit' from `memory.stat' when present (it
%%% already folds in the ancestors), else `memory.limit_in_bytes'; usage from
%%% `memory.usage_in_bytes'. Inside a container the path often does not exist under the mount
%%% (the container sees its own cgroup as the root): the mount's root files are used then.
%%% v1 reports "no limit" as a huge number (about 2^63 rounded down to a page): anything from
%%% 2^60 up is taken as no limit.
-module(mape_k_cgroup).

-export([memory/0, memory/2]).

-export_type([memory/0]).

-type memory() :: #{version := v1 | v2, limit := pos_integer() | unlimited, usage := non_neg_integer() | undefined}.

-define(UNLIMITED_FROM, 1 bsl 60).

%% @doc The memory of this node's cgroup, from the configured `cgroup_root' and
%% `/proc/self/cgroup'; `none' when there is no cgroup memory controller.
-spec memory() -> memory() | none.
memory() ->
    case file:read_file("/proc/self/cgroup") of
        {ok, Self} -> memory(mape_k_config:get(cgroup_root), Self);
        {error, _} -> none
    end.

%% @doc The memory of the cgroup described by `ProcSelfCgroup' (the content of
%% `/proc/self/cgroup') under the cgroup file system mounted at `Root'.
-spec memory(file:filename_all(), binary()) -> memory() | none.
memory(Root, ProcSelfCgroup) ->
    Lines = [binary:split(L, <<":">>, []) || L <- binary:split(ProcSelfCgroup, <<"\n">>, [global, trim_all])],
    Entries = [{H, C, P} || [H, Rest] <- Lines, [C, P] <- [binary:split(Rest, <<":">>)]],
    V1 = [P || {_, Controllers, P} <- Entries, lists:member(<<"memory">>, binary:split(Controllers, <<",">>, [global]))],
    V2 = [P || {<<"0">>, <<>>, P} <- Entries],
    case V1 of
        [Path | _] -> v1(filename:join(Root, "memory"), Path);
        [] ->
            case V2 of
                [Path | _] -> v2(Root, Path);
                [] -> none
            end
    end.

%%% Internals

v1(Mount, Path) ->
    Dir = existing_dir(Mount, Path),
    case read_integer(filename:join(Dir, "memory.limit_in_bytes")) of
        undefined ->
            none;
        Limit ->
            Hier = hierarchical_limit(filename:join(Dir, "memory.stat")),
            Effective = case Hier of undefined -> Limit; _ -> min(Hier, Limit) end,
            #{version => v1, limit => limit(Effective),
              usage => read_integer(filename:join(Dir, "memory.usage_in_bytes"))}
    end.

v2(Root, Path) ->
    Dir = existing_dir(Root, Path),
    case filelib:is_regular(filename:join(Dir, "memory.current")) of
        false ->
            none;
        true ->
            Limits = [L || D <- ancestors(Root, Dir), L <- [read_max(filename:join(D, "memory.max"))], L =/= undefined],
            Limit = case Limits of [] -> unlimited; _ -> lists:min(Limits) end,
            #{version => v2, limit => Limit, usage => read_integer(filename:join(Dir, "memory.current"))}
    end.

%% The cgroup's directory under the mount, or the mount itself when the path is not there.
existing_dir(Mount, Path) ->
    Rel = string:trim(binary_to_list(Path), leading, "/"),
    Dir = filename:join(Mount, Rel),
    case filelib:is_dir(Dir) of
        true -> Dir;
        false -> Mount
    end.

%% Dir and each of its parents up to and including Root.
ancestors(Root, Dir) ->
    RootAbs = filename:absname(Root),
    ancestors_(RootAbs, filename:absname(Dir), []).

ancestors_(Root, Root, Acc) ->
    [Root | Acc];
ancestors_(Root, Dir, Acc) ->
    case lists:prefix(Root, Dir) of
        true -> ancestors_(Root, filename:dirname(Dir), [Dir | Acc]);
        false -> Acc
    end.

read_max(File) ->
    case file:read_file(File) of
        {ok, <<"max", _/binary>>} -> undefined;
        {ok, _} -> case read_integer(File) of undefined -> undefined; N -> limit_or_undefined(N) end;
        {error, _} -> undefined
    end.

limit_or_undefined(N) when N >= ?UNLIMITED_FROM -> undefined;
limit_or_undefined(N) -> N.

limit(N) when N >= ?UNLIMITED_FROM -> unlimited;
limit(N) -> N.

hierarchical_limit(StatFile) ->
    case file:read_file(StatFile) of
        {ok, Bin} ->
            case re:run(Bin, <<"^hierarchical_memory_limit (\\d+)$">>, [multiline, {capture, all_but_first, binary}]) of
                {match, [N]} -> binary_to_integer(N);
                nomatch -> undefined
            end;
        {error, _} ->
            undefined
    end.

read_integer(File) ->
    case file:read_file(File) of
        {ok, Bin} ->
            try binary_to_integer(string:trim(Bin)) catch error:badarg -> undefined end;
        {error, _} ->
            undefined
    end.
