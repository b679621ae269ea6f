%% The Erlang remote of the benchmark workloads (benches/WORKLOADS.md): the baseline
%% that every erlnode figure is compared with.
%%
%% Started with `erl -sname ... -noshell -eval 'bench_remote:start()'`; it registers `bench`,
%% prints `READY <node>` on stdout (the runner waits for that line) and serves until killed.
%%
%%   {seq, I, Bin}      counted, no reply
%%   {stop, From}       From ! {done, Count}, count reset to 0
%%   {ping, From, I}    From ! {pong, I}
%%   {source, From, N}  From ! {seq, I, <<0:512>>} for I = 1..N, then From ! {source_done, N}
%%   {bulk_source, From, Bytes, N}
%%                      the same with one binary of Bytes zero bytes, made once
-module(bench_remote).
-export([start/0, loop/1]).

start() ->
    register(bench, spawn(?MODULE, loop, [0])),
    io:format("READY ~s~n", [node()]).

loop(Count) ->
    receive
        {seq, _, _} ->
            loop(Count + 1);
        {stop, From} ->
            From ! {done, Count},
            loop(0);
        {ping, From, I} ->
            From ! {pong, I},
            loop(Count);
        {source, From, N} ->
            source(From, 1, N),
            From ! {source_done, N},
            loop(Count);
        {bulk_source, From, Bytes, N} ->
            bulk_source(From, 1, N, <<0:Bytes/unit:8>>),
            From ! {source_done, N},
            loop(Count)
    end.

source(_, I, N) when I > N ->
    ok;
source(From, I, N) ->
    From ! {seq, I, <<0:512>>},
    source(From, I + 1, N).

bulk_source(_, I, N, _) when I > N ->
    ok;
bulk_source(From, I, N, Bin) ->
    From ! {seq, I, Bin},
    bulk_source(From, I + 1, N, Bin).
