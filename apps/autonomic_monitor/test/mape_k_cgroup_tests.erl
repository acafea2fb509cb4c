%%% @doc EUnit tests of the cgroup memory reader (`mape_k_cgroup') on mock cgroup trees written
%%% to a temporary directory: this machine has one real cgroup layout, and the reader must also
%%% handle the others (v2, v1 with and without a limit, containers that see their cgroup as root).
-module(mape_k_cgroup_tests).

-include_lib("eunit/include/eunit.hrl").

mock_tree(Files) ->
    %% The OS pid too: unique integers start again in every VM, and a tree left in /tmp by an
    %% earlier run (or another run at the same time) with another limit made this test fail.
    Root = filename:join(["/tmp", "mape_k_cgroup_mock_" ++ os:getpid() ++ "_" ++ integer_to_list(erlang:unique_integer([positive]))]),
    lists:foreach(fun({Path, Content}) ->
                      File = filename:join(Root, Path),
                      ok = filelib:ensure_dir(File),
                      ok = file:write_file(File, Content)
                  end, Files),
    Root.

v2_limit_is_the_smallest_up_the_tree_test() ->
    Root = mock_tree([{"app/memory.max", "max\n"}, {"app/memory.current", "1000\n"},
                      {"app/node/memory.max", "8000000\n"}, {"app/node/memory.current", "123456\n"},
                      {"memory.max", "4000000\n"}]),
    ?assertEqual(#{version => v2, limit => 4000000, usage => 123456},
                 mape_k_cgroup:memory(Root, <<"0::/app/node\n">>)).

v2_unlimited_test() ->
    Root = mock_tree([{"svc/memory.max", "max\n"}, {"svc/memory.current", "42\n"}]),
    ?assertEqual(#{version => v2, limit => unlimited, usage => 42}, mape_k_cgroup:memory(Root, <<"0::/svc\n">>)).

v2_container_sees_its_cgroup_as_root_test() ->
    %% /proc/self/cgroup names a path that does not exist inside the container's mount.
    Root = mock_tree([{"memory.max", "536870912\n"}, {"memory.current", "1024\n"}]),
    ?assertEqual(#{version => v2, limit => 536870912, usage => 1024},
                 mape_k_cgroup:memory(Root, <<"0::/kubepods/pod1/abc\n">>)).

v1_with_hierarchical_limit_test() ->
    Root = mock_tree([{"memory/docker/x/memory.limit_in_bytes", "9223372036854771712\n"},
                      {"memory/docker/x/memory.usage_in_bytes", "2048\n"},
                      {"memory/docker/x/memory.stat", "cache 0\nhierarchical_memory_limit 1073741824\nrss 5\n"}]),
    ?assertEqual(#{version => v1, limit => 1073741824, usage => 2048},
                 mape_k_cgroup:memory(Root, <<"12:pids:/docker/x\n4:cpu,memory:/docker/x\n0::/\n">>)).

v1_no_limit_is_unlimited_test() ->
    Root = mock_tree([{"memory/memory.limit_in_bytes", "9223372036854771712\n"},
                      {"memory/memory.usage_in_bytes", "77\n"}]),
    ?assertEqual(#{version => v1, limit => unlimited, usage => 77},
                 mape_k_cgroup:memory(Root, <<"4:memory:/somewhere/else\n">>)).

no_memory_controller_test() ->
    Root = mock_tree([{"cpu/cpu.shares", "1024\n"}]),
    ?assertEqual(none, mape_k_cgroup:memory(Root, <<"3:cpu:/x\n">>)),
    ?assertEqual(none, mape_k_cgroup:memory(Root, <<"0::/x\n">>)),
    ?assertEqual(none, mape_k_cgroup:memory(Root, <<>>)).

this_machine_test() ->
    %% Whatever this machine has, the reader answers without crashing.
    case mape_k_cgroup:memory("/sys/fs/cgroup", element(2, file:read_file("/proc/self/cgroup"))) of
        none -> ok;
        #{version := V, limit := L} -> ?assert((V =:= v1 orelse V =:= v2) andalso (L =:= unlimited orelse L > 0))
    end.
