%%% @doc The resource hogs the chaos scenarios start on a victim node (this module runs there).
%%% `memory': a process that allocates 16 MB binaries until the node's memory reaches the
%%% monitor's memory threshold (plus 3 points) of its memory limit, then holds it; `cpu': one
%%% busy process per scheduler, at low priority (the node stays responsive, the host's CPU is
%%% saturated). Each runs `hold_ms' and then exits; {@link stop/1} ends it sooner.
-module(chaos_hog).

-export([start/2, stop/1, running/1]).

%% @doc Starts a hog on this node; `{ok, Pid}'.
-spec start(memory | cpu, #{hold_ms := pos_integer()}) -> {ok, pid()} | {error, term()}.
start(Kind, #{hold_ms := Hold}) when Kind =:= memory; Kind =:= cpu ->
    Name = name(Kind),
    case whereis(Name) of
        undefined ->
            Pid = spawn(fun() -> run(Kind, Hold) end),
            try register(Name, Pid), {ok, Pid}
            catch error:badarg -> exit(Pid, kill), {error, already_running}
            end;
        _ ->
            {error, already_running}
    end;
start(Kind, Opts) ->
    {error, {invalid_hog, Kind, Opts}}.

%% @doc Stops a hog (idempotent).
-spec stop(memory | cpu) -> ok.
stop(Kind) ->
    case whereis(name(Kind)) of
        undefined -> ok;
        Pid -> exit(Pid, kill), ok
    end.

%% @doc Whether a hog runs.
-spec running(memory | cpu) -> boolean().
running(Kind) ->
    whereis(name(Kind)) =/= undefined.

name(memory) -> chaos_hog_memory;
name(cpu) -> chaos_hog_cpu.

run(memory, Hold) ->
    Limit = case mape_k_config:get(memory_limit) of
        auto -> 1 bsl 30;
        L -> L
    end,
    Threshold = maps:get(memory, mape_k_config:get(thresholds), 90),
    Target = Limit * (Threshold + 3) div 100,
    Chunks = grow(Target, []),
    timer:sleep(Hold),
    %% Keeps the chunks referenced until here.
    length(Chunks);
run(cpu, Hold) ->
    Spinners = [spawn_link(fun() -> process_flag(priority, low), spin(0) end)
                || _ <- lists:seq(1, erlang:system_info(schedulers_online))],
    timer:sleep(Hold),
    [exit(P, kill) || P <- Spinners],
    ok.

grow(Target, Acc) ->
    case erlang:memory(total) >= Target orelse length(Acc) > 256 of
        true -> Acc;
        false ->
            %% A fresh binary each time (binary:copy writes every byte, so the pages are really
            %% used), made of 1 MB blocks: copying a 1-byte pattern would take seconds.
            Chunk = binary:copy(<<0:(8 * 1024 * 1024)>>, 16),
            grow(Target, [Chunk | Acc])
    end.

spin(N) ->
    spin(N + 1).
