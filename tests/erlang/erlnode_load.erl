%% Erlang's side of the load, fault and soak tests (tests/test_load.py, tests/test_faults.py,
%% tests/test_hostile.py, benches/soak.py): senders of sequenced messages, a collector that
%% checks them, counters, echo servers and a round-trip timer. Compiled, not evaluated by the
%% repl: an interpreted loop would be the bottleneck at a million messages.
%%
%% A sequenced message is `{SenderId, Seq}` (Seq 1, 2, ...), or `{SenderId, Seq, Padding}`.
-module(erlnode_load).
-export([
    senders/4,
    go/1,
    send_seq/4,
    collector/1,
    collector_loop/3,
    report/1,
    counter/0,
    count/1,
    echo/0,
    round_trips/3,
    steady/5,
    counter_at/1
]).

%% Spawns `Count` senders, ids `FirstId`, FirstId + 1, ...; each waits for `go`, then sends
%% `{Id, Seq}` for Seq in 1..N to `Dest` as fast as it can, and ends. Returns their pids.
senders(Dest, FirstId, Count, N) ->
    [
        spawn(fun() ->
            receive
                go -> send_seq(Dest, Id, 1, N)
            end
        end)
     || Id <- lists:seq(FirstId, FirstId + Count - 1)
    ].

go(Pids) ->
    [P ! go || P <- Pids],
    ok.

send_seq(_Dest, _Id, Seq, N) when Seq > N ->
    ok;
send_seq(Dest, Id, Seq, N) ->
    Dest ! {Id, Seq},
    send_seq(Dest, Id, Seq + 1, N).

%% A process that checks sequenced messages: per sender, each Seq must be the one after the
%% last. Registered as `Name`. Answers `{report, From}` with
%% `{report, Total, OutOfOrder, #{SenderId => LastSeq}}`.
collector(Name) ->
    Pid = spawn(?MODULE, collector_loop, [0, 0, #{}]),
    register(Name, Pid),
    Pid.

collector_loop(Total, Bad, Last) ->
    receive
        {report, From} ->
            From ! {report, Total, Bad, Last},
            collector_loop(Total, Bad, Last);
        {Id, Seq} ->
            seen(Total, Bad, Last, Id, Seq);
        {Id, Seq, _Padding} ->
            seen(Total, Bad, Last, Id, Seq);
        _Other ->
            collector_loop(Total, Bad + 1, Last)
    end.

seen(Total, Bad, Last, Id, Seq) ->
    Bad1 =
        case Seq =:= maps:get(Id, Last, 0) + 1 of
            true -> Bad;
            false -> Bad + 1
        end,
    collector_loop(Total + 1, Bad1, Last#{Id => Seq}).

%% The collector's report: `{Total, OutOfOrder, #{SenderId => LastSeq}}`.
report(Collector) ->
    Collector ! {report, self()},
    receive
        {report, Total, Bad, Last} -> {Total, Bad, Last}
    after 30000 -> timeout
    end.

%% A process that counts what it receives and answers `{count, From}` with `{count, N}`;
%% it traps exits, and an exit signal is counted apart: `{count, From}` then answers
%% `{count, N, {exit_after, M}}` with M the number of messages received before the signal.
counter() ->
    spawn(fun() ->
        process_flag(trap_exit, true),
        counter_loop(0, none)
    end).

counter_loop(N, Exit) ->
    receive
        {count, From} when Exit =:= none ->
            From ! {count, N},
            counter_loop(N, Exit);
        {count, From} ->
            From ! {count, N, Exit},
            counter_loop(N, Exit);
        {'EXIT', _, _} ->
            counter_loop(N, {exit_after, N});
        _ ->
            counter_loop(N + 1, Exit)
    end.

%% The counter's answer: `{count, N}`, or `{count, N, {exit_after, M}}` after an exit signal.
count(Counter) ->
    Counter ! {count, self()},
    receive
        Reply -> Reply
    after 30000 -> timeout
    end.

%% Answers `{From, Term}` with `Term`, forever.
echo() ->
    spawn(fun echo_loop/0).

echo_loop() ->
    receive
        {From, Term} ->
            From ! Term,
            echo_loop()
    end.

%% `N` round trips to `Dest` (which answers `{From, Term}` with `Term`), one at a time; returns
%% each one's time in microseconds, sorted. Gives up (returns `timeout`) if an answer takes
%% more than `TimeoutMs`.
round_trips(Dest, N, TimeoutMs) ->
    round_trips(Dest, N, TimeoutMs, []).

round_trips(_Dest, 0, _TimeoutMs, Acc) ->
    lists:sort(Acc);
round_trips(Dest, N, TimeoutMs, Acc) ->
    T0 = erlang:monotonic_time(microsecond),
    Dest ! {self(), N},
    receive
        N ->
            T1 = erlang:monotonic_time(microsecond),
            round_trips(Dest, N - 1, TimeoutMs, [T1 - T0 | Acc])
    after TimeoutMs -> timeout
    end.

%% A steady sender: `{Id, Seq, Padding}` to `Dest`, `PerTick` messages every 10 ms (on a
%% fixed schedule: a late tick makes the next one sooner), for `Seconds` (0: until told
%% `stop`); answers `{sent, From}` with `{sent, Id, LastSeq}`.
steady(Dest, Id, PerTick, PaddingBytes, Seconds) ->
    spawn(fun() ->
        Padding = binary:copy(<<"x">>, PaddingBytes),
        Now = erlang:monotonic_time(millisecond),
        Until =
            case Seconds of
                0 -> infinity;
                _ -> Now + Seconds * 1000
            end,
        steady_loop(Dest, Id, PerTick, Padding, Until, Now, 0)
    end).

steady_loop(Dest, Id, PerTick, Padding, Until, Tick, Seq) ->
    case Until =/= infinity andalso Tick >= Until of
        true ->
            steady_stopped(Id, Seq);
        false ->
            Seq1 = steady_burst(Dest, Id, Padding, Seq, PerTick),
            Next = Tick + 10,
            Wait = max(0, Next - erlang:monotonic_time(millisecond)),
            receive
                stop ->
                    steady_stopped(Id, Seq1);
                {sent, From} ->
                    From ! {sent, Id, Seq1},
                    steady_loop(Dest, Id, PerTick, Padding, Until, Next, Seq1)
            after Wait ->
                steady_loop(Dest, Id, PerTick, Padding, Until, Next, Seq1)
            end
    end.

steady_burst(_Dest, _Id, _Padding, Seq, 0) ->
    Seq;
steady_burst(Dest, Id, Padding, Seq, K) ->
    Dest ! {Id, Seq + 1, Padding},
    steady_burst(Dest, Id, Padding, Seq + 1, K - 1).

steady_stopped(Id, Seq) ->
    receive
        {sent, From} ->
            From ! {sent, Id, Seq},
            steady_stopped(Id, Seq)
    end.

%% A counter (see `counter/0`) whose pid is `<0.Number.0>`: short-lived processes are spawned
%% until the next pid has that number, so that a node started again the same way can have a
%% process with the very pid number of one of its earlier incarnation. `{error, passed}` when
%% this node's pids are already beyond it.
counter_at(Number) ->
    P = counter(),
    case pid_number(P) of
        Number ->
            P;
        N when N < Number ->
            exit(P, kill),
            counter_at(Number);
        _ ->
            exit(P, kill),
            {error, passed}
    end.

pid_number(Pid) ->
    [_, Number, _] = string:lexemes(pid_to_list(Pid) -- "<>", "."),
    list_to_integer(Number).
