%% Erlang's own codec on the benchmark payloads, timed in compiled loops (not erl_eval).
-module(erl_codec_bench).
-export([payload/1, encode/2, decode/2]).

c1(Id) -> #{id => Id, name => <<"alice">>, score => 3.14, tags => [a, b, c], active => true}.

payload(c1) -> c1(12345);
payload(c2) -> [c1(I) || I <- lists:seq(1, 1000)];
payload(c3) -> binary:copy(<<0>>, 1 bsl 20).

%% Nanoseconds per term_to_binary(Term), over N calls.
encode(Term, N) ->
    {Us, _} = timer:tc(fun() -> enc_loop(Term, N, 0) end),
    Us * 1000 / N.

%% Nanoseconds per binary_to_term(Bin), over N calls.
decode(Bin, N) ->
    {Us, _} = timer:tc(fun() -> dec_loop(Bin, N, none) end),
    Us * 1000 / N.

%% The results feed an accumulator so no call can be optimised away.
enc_loop(_, 0, Acc) -> Acc;
enc_loop(T, N, Acc) -> enc_loop(T, N - 1, Acc + byte_size(term_to_binary(T))).

dec_loop(_, 0, Last) -> Last;
dec_loop(B, N, _) -> dec_loop(B, N - 1, binary_to_term(B)).
