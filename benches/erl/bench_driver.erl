%% The Erlang driver of the benchmark workloads (benches/WORKLOADS.md).
%%
%% Started with `erl -sname ... -noshell -eval 'bench_driver:main()'`, it reads one request
%% per stdin line (an Erlang term ending with a dot), runs it in a fresh process (so that
%% every workload starts with an empty mailbox) and prints one reply line:
%%   @@R {"key": number, ...}     the figures (JSON, for benches/run.py)
%%   @@E <text>                   the workload failed (timeout, lost messages, ...)
%% Requests:
%%   {warm, Node}                          connect and do 100 round trips
%%   {w1, Node, N}                         sink: N x {seq, I, <<0:512>>}, stop, done
%%   {w2, Node, N}                         echo: N sequential ping/pong round trips
%%   {w3, Node, N}                         source: ask for N messages, take them all
%%   {w4, Node, Bytes, Count}              bulk: Count x {seq, I, <<0:Bytes/unit:8>>}, stop, done
%%   {w4send, Node, Bytes, Count}          bulk the other way: ask for Count binaries of Bytes
%%                                         bytes, take them all
%%   {w5, Node, Helper, Procs, NEach}      fan-in: Procs workers spread over this node and
%%                                         Helper each send NEach messages at once
%%   {flood_start, Node, Rate}             starts sending {seq, I, <<0:512>>} to a name that
%%                                         nobody registered on Node, Rate a second (0: as
%%                                         fast as it goes), in the background; replies at once
%%   flood_stop                            stops it: how many it sent, over how long
%% Times come from erlang:monotonic_time/0; nothing is counted as done until the remote has
%% confirmed the count, so a lost message is an error, never a fast figure.
-module(bench_driver).
-export([main/0, w5_worker/3, flood/2]).

%% No workload may take longer than this (the runner has its own, longer, timeout).
-define(TIMEOUT, 120000).

main() ->
    io:format("READY ~s~n", [node()]),
    loop().

loop() ->
    case io:get_line(standard_io, "") of
        eof -> halt(0);
        {error, _} -> halt(1);
        Line -> request(Line), loop()
    end.

request(Line) ->
    Self = self(),
    {Pid, Ref} = spawn_monitor(fun() -> Self ! {self(), run(parse(Line))} end),
    receive
        {Pid, {ok, Figures}} ->
            io:format("@@R ~s~n", [json(Figures)]);
        {Pid, {error, Why}} ->
            io:format("@@E ~0p~n", [Why]);
        {'DOWN', Ref, process, Pid, Reason} ->
            io:format("@@E crashed: ~0p~n", [Reason])
    end,
    erlang:demonitor(Ref, [flush]).

parse(Line) ->
    {ok, Tokens, _} = erl_scan:string(Line),
    {ok, Term} = erl_parse:parse_term(Tokens),
    Term.

run({warm, Node}) ->
    case net_adm:ping(Node) of
        pong -> echo({bench, Node}, 100), {ok, [{warm, 1}]};
        pang -> {error, {cannot_reach, Node}}
    end;
run({w1, Node, N}) ->
    sink({bench, Node}, N, <<0:512>>);
run({w2, Node, N}) ->
    echo({bench, Node}, N);
run({w3, Node, N}) ->
    source({bench, Node}, N);
run({w4, Node, Bytes, Count}) ->
    Bin = <<0:Bytes/unit:8>>,
    case sink({bench, Node}, Count, Bin) of
        {ok, [{rate, Rate} | _] = Figures} ->
            {ok, [{mib_per_s, Rate * Bytes / (1024 * 1024)} | Figures]};
        Error ->
            Error
    end;
run({w4send, Node, Bytes, Count}) ->
    bulk_source({bench, Node}, Bytes, Count);
run({w5, Node, Helper, Procs, NEach}) ->
    fan_in(Node, Helper, Procs, NEach);
run({flood_start, Node, Rate}) ->
    % Not linked: the flood outlives this request's process, until flood_stop.
    register(flood, spawn(?MODULE, flood, [{nobody, Node}, Rate])),
    {ok, [{started, 1}]};
run(flood_stop) ->
    flood ! {stop, self()},
    receive
        {flooded, Sent, Secs} -> {ok, [{sent, Sent}, {seconds, Secs}, {rate, Sent / Secs}]}
    after ?TIMEOUT ->
        {error, {timeout, flood_stop}}
    end;
run(Other) ->
    {error, {unknown_request, Other}}.

seconds_since(T0) ->
    erlang:convert_time_unit(erlang:monotonic_time() - T0, native, nanosecond) / 1.0e9.

%% W1 and W4: the clock stops when the remote has answered the stop that follows the last
%% message, i.e. when it has counted them all.
sink(Dest, N, Bin) ->
    T0 = erlang:monotonic_time(),
    send_seq(Dest, 1, N, Bin),
    Dest ! {stop, self()},
    receive
        {done, N} ->
            Secs = seconds_since(T0),
            {ok, [{rate, N / Secs}, {seconds, Secs}]};
        {done, Other} ->
            {error, {lost_messages, sent, N, counted, Other}}
    after ?TIMEOUT ->
        {error, {timeout, sink, N}}
    end.

send_seq(_, I, N, _) when I > N ->
    ok;
send_seq(Dest, I, N, Bin) ->
    Dest ! {seq, I, Bin},
    send_seq(Dest, I + 1, N, Bin).

%% W2: every round trip timed on its own; median and p99 in microseconds.
echo(Dest, N) ->
    case echo(Dest, 1, N, []) of
        {error, _} = E ->
            E;
        Times ->
            Sorted = lists:sort(Times),
            {ok, [{median_us, percentile(Sorted, 0.5)}, {p99_us, percentile(Sorted, 0.99)}]}
    end.

echo(_, I, N, Acc) when I > N ->
    Acc;
echo(Dest, I, N, Acc) ->
    T0 = erlang:monotonic_time(),
    Dest ! {ping, self(), I},
    receive
        {pong, I} ->
            Us = erlang:convert_time_unit(erlang:monotonic_time() - T0, native, nanosecond) / 1000,
            echo(Dest, I + 1, N, [Us | Acc])
    after ?TIMEOUT ->
        {error, {timeout, ping, I}}
    end.

percentile(Sorted, P) ->
    lists:nth(max(1, min(length(Sorted), round(P * length(Sorted)))), Sorted).

%% W3: the clock stops at source_done, which the remote sends after the N messages.
source(Dest, N) ->
    T0 = erlang:monotonic_time(),
    Dest ! {source, self(), N},
    case take_seq(0) of
        {ok, N} ->
            Secs = seconds_since(T0),
            {ok, [{rate, N / Secs}, {seconds, Secs}]};
        {ok, Got} ->
            {error, {lost_messages, asked, N, got, Got}};
        Error ->
            Error
    end.

take_seq(Count) ->
    receive
        {seq, _, _} -> take_seq(Count + 1);
        {source_done, _} -> {ok, Count}
    after ?TIMEOUT ->
        {error, {timeout, source, Count}}
    end.

%% W4 send: W3 with big binaries; the clock stops at source_done, after the Count binaries,
%% each checked for its size.
bulk_source(Dest, Bytes, Count) ->
    T0 = erlang:monotonic_time(),
    Dest ! {bulk_source, self(), Bytes, Count},
    case take_bulk(Bytes, 0) of
        {ok, Count} ->
            Secs = seconds_since(T0),
            Rate = Count / Secs,
            {ok, [{mib_per_s, Rate * Bytes / (1024 * 1024)}, {rate, Rate}, {seconds, Secs}]};
        {ok, Got} ->
            {error, {lost_messages, asked, Count, got, Got}};
        Error ->
            Error
    end.

take_bulk(Bytes, Count) ->
    receive
        {seq, _, Bin} when byte_size(Bin) =:= Bytes -> take_bulk(Bytes, Count + 1);
        {seq, I, Bin} -> {error, {wrong_size, I, byte_size(Bin), Bytes}};
        {source_done, _} -> {ok, Count}
    after ?TIMEOUT ->
        {error, {timeout, bulk_source, Count}}
    end.

%% W5: workers first do a round trip each (so connection set-up is not timed), then all start
%% at once. A worker is done when the remote answers the ping that follows its last message
%% (one sender's messages arrive in order); the final stop checks nothing was lost.
fan_in(Node, Helper, Procs, NEach) ->
    Self = self(),
    Nodes = [node(), Helper],
    Workers = [spawn_link(lists:nth(1 + I rem 2, Nodes), ?MODULE, w5_worker, [Self, Node, NEach])
               || I <- lists:seq(1, Procs)],
    [receive {ready, W} -> ok after ?TIMEOUT -> exit({timeout, w5_ready}) end || W <- Workers],
    T0 = erlang:monotonic_time(),
    [W ! go || W <- Workers],
    [receive {finished, W} -> ok after ?TIMEOUT -> exit({timeout, w5_finished}) end
     || W <- Workers],
    Secs = seconds_since(T0),
    Total = Procs * NEach,
    {bench, Node} ! {stop, self()},
    receive
        {done, Total} -> {ok, [{rate, Total / Secs}, {seconds, Secs}]};
        {done, Other} -> {error, {lost_messages, sent, Total, counted, Other}}
    after ?TIMEOUT ->
        {error, {timeout, w5_stop}}
    end.

w5_worker(Coordinator, Node, NEach) ->
    Dest = {bench, Node},
    {ok, _} = echo(Dest, 1),
    Coordinator ! {ready, self()},
    receive go -> ok end,
    send_seq(Dest, 1, NEach, <<0:512>>),
    Dest ! {ping, self(), 0},
    receive {pong, 0} -> ok end,
    Coordinator ! {finished, self()}.

%% The flood: each message is one that the remote drops (a DEBUG record at most, in erlnode).
%% At a given rate it sends what is due every millisecond; at rate 0 it sends batches of 100
%% and is held back only by the distribution buffer (a busy connection suspends the sender).
flood(Dest, Rate) ->
    flood(Dest, Rate, erlang:monotonic_time(), 0).

flood(Dest, Rate, T0, Sent) ->
    Due = case Rate of
        0 -> Sent + 100;
        _ -> min(round(Rate * seconds_since(T0)), Sent + 1000)
    end,
    Wait = case Due > Sent of true -> 0; false -> 1 end,
    receive
        {stop, From} -> From ! {flooded, Sent, seconds_since(T0)}
    after Wait ->
        send_seq(Dest, Sent + 1, Due, <<0:512>>),
        flood(Dest, Rate, T0, max(Sent, Due))
    end.

json(Figures) ->
    Fields = [io_lib:format("\"~s\": ~s", [K, number(V)]) || {K, V} <- Figures],
    ["{", lists:join(", ", Fields), "}"].

number(V) when is_integer(V) -> integer_to_list(V);
number(V) when is_float(V) -> float_to_list(V, [{decimals, 6}, compact]).
