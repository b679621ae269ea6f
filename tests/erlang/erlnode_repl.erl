%% A read-eval loop for tests: Python (tests/erl.py) drives a real node over stdin/stdout.
%%
%% Requests, one per line:
%%   E <base64 of an Erlang expression>   evaluate it; bindings persist across requests
%%   S <Name> <base64 of bytes>           bind variable Name to that binary (replacing it)
%%   F <Name>                             forget variable Name
%%   Q                                    halt the node
%% Replies are lines starting with the marker, so anything else printed to stdout (io:format
%% from test code, logger reports) is only logged by the Python side:
%%   @@ERLREPL@@ ready <node name>
%%   @@ERLREPL@@ ok <base64 of term_to_binary(Result)>
%%   @@ERLREPL@@ error <base64 of a description>
-module(erlnode_repl).
-export([main/0]).

-define(MARK, "@@ERLREPL@@ ").

%% Requests are read from a port on stdin of our own (erl runs with -noinput, so the shell's
%% reader leaves stdin alone): from OTP 26 on, io:get_line on standard_io reads about 3 MB/s,
%% seconds for the big terms `S` binds. Python writes a request only once the last one is
%% answered, so an expression that `receive`s does not see a port message (Python's stop()
%% after a timed-out request is the exception, and kills the node when it does not halt).
main() ->
    Stdin = open_port({fd, 0, 1}, [in, binary, eof, {line, 65536}]),
    reply(<<"ready">>, atom_to_binary(node(), utf8)),
    loop(Stdin, [], erl_eval:new_bindings()).

loop(Stdin, Partial, Bindings) ->
    receive
        {Stdin, {data, {noeol, Chunk}}} ->
            loop(Stdin, [Partial, Chunk], Bindings);
        {Stdin, {data, {eol, Chunk}}} ->
            Line = string:trim(iolist_to_binary([Partial, Chunk]), trailing, "\r"),
            loop(Stdin, [], request(Line, Bindings));
        {Stdin, eof} ->
            halt(0)
    end.

request(<<"Q">>, _) ->
    halt(0);
request(<<"E ", Encoded/binary>>, Bindings) ->
    eval(base64:decode(Encoded), Bindings);
request(<<"S ", Rest/binary>>, Bindings) ->
    [Name, Encoded] = binary:split(Rest, <<" ">>),
    Var = binary_to_atom(Name, utf8),
    reply(<<"ok">>, term_to_binary(ok)),
    erl_eval:add_binding(Var, base64:decode(Encoded), erl_eval:del_binding(Var, Bindings));
request(<<"F ", Name/binary>>, Bindings) ->
    reply(<<"ok">>, term_to_binary(ok)),
    erl_eval:del_binding(binary_to_atom(Name, utf8), Bindings);
request(Other, Bindings) ->
    reply(<<"error">>, <<"bad request: ", Other/binary>>),
    Bindings.

eval(Source, Bindings) ->
    try
        Text = unicode:characters_to_list(Source, utf8),
        {ok, Tokens, _} = erl_scan:string(Text),
        {ok, Exprs} = erl_parse:parse_exprs(Tokens),
        {value, Value, NewBindings} = erl_eval:exprs(Exprs, Bindings),
        reply(<<"ok">>, term_to_binary(Value)),
        NewBindings
    catch
        Class:Reason:Stack ->
            Text2 = io_lib:format("~p:~0p~n~0p", [Class, Reason, Stack]),
            reply(<<"error">>, unicode:characters_to_binary(Text2)),
            Bindings
    end.

reply(Kind, Payload) ->
    io:put_chars(standard_io, [?MARK, Kind, " ", base64:encode(Payload), "\n"]).
