%% -*- coding: utf-8 -*-
%% The codec corpus: varied terms made by Erlang itself, in several encodings. The Python
%% test decodes each encoding with erlnode, encodes the result again and hands the bytes
%% back to check/1, which compares with the original using =:=.
-module(codec_corpus).
-export([terms/0, encodings/0, check/1, port_indices/0]).

%% A pid, port or reference of another node, made by decoding a crafted binary.
remote_pid(Node, Id, Serial, Creation) ->
    N = atom_to_binary(Node, utf8),
    binary_to_term(<<131, 88, 119, (byte_size(N)), N/binary, Id:32, Serial:32, Creation:32>>).

remote_port(Node, Id, Creation) ->
    N = atom_to_binary(Node, utf8),
    binary_to_term(<<131, 89, 119, (byte_size(N)), N/binary, Id:32, Creation:32>>).

remote_ref(Node, Creation, Ids) ->
    N = atom_to_binary(Node, utf8),
    Words = <<<<I:32>> || I <- Ids>>,
    binary_to_term(<<131, 90, (length(Ids)):16, 119, (byte_size(N)), N/binary,
                     Creation:32, Words/binary>>).

nest_list(0, Acc) -> Acc;
nest_list(N, Acc) -> nest_list(N - 1, [Acc]).

nest_tuple(0, Acc) -> Acc;
nest_tuple(N, Acc) -> nest_tuple(N - 1, {N, Acc}).

nest_map(0, Acc) -> Acc;
nest_map(N, Acc) -> nest_map(N - 1, #{N => Acc, [N] => N}).

terms() ->
    Y = 42,
    Z = <<"free">>,
    Port = hd(erlang:ports()),
    Ints = [0, 1, 255, 256, -1, -255, -256, 65535, 2147483647, -2147483648,
            2147483648, -2147483649, 1 bsl 32, (1 bsl 63) - 1, 1 bsl 63, -(1 bsl 63),
            -(1 bsl 63) - 1, (1 bsl 64) - 1, 1 bsl 64, -(1 bsl 64),
            (1 bsl 2048) - 1, -((1 bsl 2048) - 1), 1 bsl 2047, -(1 bsl 2047),
            1 bsl 2040 + 12345, 1 bsl 9000, -(1 bsl 9000)]
        ++ [1 bsl N || N <- lists:seq(0, 200, 7)]
        ++ [-(1 bsl N) + 3 || N <- lists:seq(1, 200, 11)],
    Floats = [0.0, -0.0, 1.0, -1.0, 0.5, 3.14, -2.718281828459045, 1.0e308, -1.0e308,
              5.0e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 123456789.125,
              1.0e-10, 6.02214076e23],
    Atoms = ['', ok, true, false, undefined, 'hello world', 'with\'quote', 'héllo', 'ñandú',
             '日本語', 'emoji 🎉', 'Ωμέγα', nonode@nohost, 'a@b.c',
             list_to_atom(lists:duplicate(255, $a)),
             list_to_atom(lists:duplicate(255, 16#3042)),
             list_to_atom(lists:duplicate(255, 16#1F600))],
    Binaries = [<<>>, <<0>>, <<1, 2, 3>>, <<"hello">>, <<"héllo"/utf8>>,
                list_to_binary(lists:seq(0, 255)), binary:copy(<<"xyz">>, 40000),
                <<1:1>>, <<0:7>>, <<255, 3:2>>, <<1, 2, 3, 5:5>>, <<16#FF:8, 1:1>>],
    Lists = [[], [1], [a, b, c], "abc", "héllo", "日本", [1000, 2000, 3000],
             [0, 255], [0, 256], lists:seq(1, 300), lists:duplicate(65535, $x),
             lists:duplicate(65536, $y), lists:duplicate(70000, 16#3042),
             [[], [[]], [[[]]]], ["nested", ["strings", [$a | "bc"]]],
             [1 | 2], [1, 2 | a], [a | <<>>], [[1] | [2 | 3]], [{} | #{}], ["x" | <<"y">>],
             [1.0, -0.0, 0.0], [self() | make_ref()]],
    Tuples = [{}, {a}, {1, 2, 3}, {ok, <<"bin">>, [1, 2], #{}},
              list_to_tuple(lists:seq(1, 255)), list_to_tuple(lists:seq(1, 256)),
              list_to_tuple(lists:seq(1, 70000)), {{{{{}}}}}, {[], "", <<>>, {}}],
    Maps = [#{}, #{a => 1}, #{id => 12345, name => <<"alice">>, score => 3.14,
                             tags => [a, b, c], active => true},
            #{[1, 2] => x, {a, [b]} => y, #{k => v} => z, <<"b">> => 1, "s" => str},
            #{1 => int, 1.0 => float, 0.0 => zero, -0.0 => negzero, true => t, a => atom,
              "a" => string, <<"a">> => bin, [] => nil, {} => tuple},
            #{#{[1] => #{}} => [#{}], #{#{a => [b]} => c} => d},
            maps:from_list([{I, I * I} || I <- lists:seq(1, 33)]),
            maps:from_list([{integer_to_binary(I), [I]} || I <- lists:seq(1, 500)]),
            maps:from_list([{{k, I}, #{I => [I]}} || I <- lists:seq(1, 100)]),
            maps:from_list([{[I, I], I} || I <- lists:seq(1, 40)]),
            #{nested => #{deeper => #{deepest => []}}}],
    Pids = [self(), spawn(fun() -> ok end), list_to_pid("<0.1.0>"),
            remote_pid('other@host', 42, 0, 3), remote_pid('other@host', 1 bsl 14, 7, 1),
            remote_pid('ñode@hôst', 5, 1, 16#DEADBEEF)],
    Ports = [Port, list_to_port("#Port<0.5>"), remote_port('other@host', 9, 2),
             remote_port('x@y', (1 bsl 27) + 1, 16#FFFFFFFF)],
    Refs = [make_ref(), make_ref(), remote_ref('other@host', 3, [1, 2, 3]),
            remote_ref('other@host', 16#ABCDEF01, [16#3FFFF, 16#FFFFFFFF, 0])],
    Funs = [fun() -> ok end, fun(X) -> X + Y end, fun(A, B) -> {A, B, Z, Y} end,
            fun lists:map/2, fun erlang:self/0, fun codec_corpus:terms/0,
            fun(X) -> {X, self(), Port} end],
    Deep = [nest_list(1000, []), nest_tuple(500, leaf), nest_map(30, #{}),
            nest_list(100000, x)],
    Mixed = [{Ints, Floats}, #{ints => Ints, atoms => Atoms}, [Pids, Refs, Ports],
             {tagged, [{K, V} || {K, V} <- [{a, 1}, {b, <<"2">>}, {c, [3.0]}]]},
             [#{id => I, name => <<"alice">>, score => 3.14, tags => [a, b, c],
                active => true} || I <- lists:seq(1, 50)]],
    Extra = [{I, [I], <<I>>, float(I) / 7} || I <- lists:seq(0, 255, 17)]
        ++ [lists:seq(0, N) || N <- [10, 100, 1000]]
        ++ [unicode:characters_to_binary("Ωμέγα 日本 🎉"), "Ωμέγα", [16#10FFFF]],
    Ints ++ Floats ++ Atoms ++ Binaries ++ Lists ++ Tuples ++ Maps ++ Pids ++ Ports
        ++ Refs ++ Funs ++ Deep ++ Mixed ++ Extra.

%% [{Index, Options, Encoded}] for every term in every encoding.
encodings() ->
    Options = [[], [compressed], [{compressed, 9}], [{minor_version, 0}],
               [{minor_version, 1}], [{minor_version, 2}]],
    Terms = lists:zip(lists:seq(1, length(terms())), terms()),
    put(corpus, Terms),
    [{I, O, term_to_binary(T, O)} || {I, T} <- Terms, O <- Options].

%% Checks [{Index, Options, PythonBytes}]; returns the failures.
check(Results) ->
    Terms = case get(corpus) of
                undefined -> lists:zip(lists:seq(1, length(terms())), terms());
                Saved -> Saved
            end,
    [{I, O, T}
     || {I, O, Bytes} <- Results,
        T <- [element(2, lists:keyfind(I, 1, Terms))],
        not same(Bytes, T)].

same(Bytes, T) ->
    try binary_to_term(Bytes) =:= T
    catch _:_ -> false
    end.

%% The indices of the terms holding a port (also inside a fun's environment). OTP 26 and later
%% write every port as V4_PORT_EXT; erlnode, as OTP 25, writes NEW_PORT_EXT when the id fits in
%% 32 bits. Both decode to the same port: only the bytes differ.
port_indices() ->
    [I || {I, T} <- lists:zip(lists:seq(1, length(terms())), terms()), holds_port(T)].

holds_port(T) when is_port(T) -> true;
holds_port([H | T]) -> holds_port(H) orelse holds_port(T);
holds_port(T) when is_tuple(T) -> holds_port(tuple_to_list(T));
holds_port(T) when is_map(T) -> holds_port(maps:to_list(T));
holds_port(T) when is_function(T) -> {env, Env} = erlang:fun_info(T, env), holds_port(Env);
holds_port(_) -> false.
