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

main() ->
    ok = io:setopts(standard_io, [binary, {encoding, latin1}]),
    reply(<<"ready">>, atom_to_binary(node(), utf8)),
    loop(erl_eval:new_bindings()).

loop(Bindings) ->
    case io:get_line(standard_io, "") of
        eof -> halt(0);
        {error, _} -> halt(1);
        Line -> loop(request(string:trim(Line, trailing, "\r\n"), Bindings))
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
