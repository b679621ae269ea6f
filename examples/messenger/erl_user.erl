%% A scripted Erlang user of the messenger: logs on under a name, sends one message to another
%% user (retrying while that user has not logged on yet), then prints every message it receives.
%%
%% Run it:
%%   erl -sname erlang_user -setcookie COOKIE -noshell -pa DIR \
%%       -run erl_user main messenger@HOST erlang_user python "hello from Erlang"
%% Arguments: server node, own user name, recipient name, text.
%% Every event is printed on one line starting with "[Name]" so a script can follow along.
-module(erl_user).
-export([main/1]).

-define(CONNECT_TIMEOUT_MS, 10000).
-define(REPLY_TIMEOUT_MS, 10000).
%% How long to keep retrying while the recipient has not logged on yet.
-define(RECIPIENT_WAIT_MS, 20000).
-define(RETRY_MS, 200).

main([ServerNode, Name, To, Text]) ->
    %% -run calls us from the init process; the user runs in a process of its own so that
    %% init is free to go on (and to halt the node when asked).
    spawn(fun() -> run(list_to_atom(ServerNode), list_to_atom(Name), list_to_atom(To), Text) end),
    ok;
main(Args) ->
    io:format("usage: erl_user main SERVER_NODE NAME TO TEXT (got ~tp)~n", [Args]),
    erlang:halt(2).

run(ServerNode, Name, To, Text) ->
    put(name, Name),
    connect(ServerNode, erlang:monotonic_time(millisecond) + ?CONNECT_TIMEOUT_MS),
    %% If the server's node goes away there is nobody left to talk to.
    monitor_node(ServerNode, true),
    Server = {messenger, ServerNode},
    Server ! {self(), logon, Name},
    receive
        {messenger, logged_on} ->
            log("logged on to ~ts as ~tp", [ServerNode, Name]);
        {messenger, stop, Why} ->
            fail("logon refused: ~tp", [Why])
    after ?REPLY_TIMEOUT_MS ->
        fail("no answer to logon from ~ts", [ServerNode])
    end,
    send(Server, To, Text, erlang:monotonic_time(millisecond) + ?RECIPIENT_WAIT_MS),
    listen(ServerNode).

connect(ServerNode, Deadline) ->
    case net_adm:ping(ServerNode) of
        pong ->
            ok;
        pang ->
            case erlang:monotonic_time(millisecond) < Deadline of
                true -> timer:sleep(?RETRY_MS), connect(ServerNode, Deadline);
                false -> fail("cannot reach ~ts", [ServerNode])
            end
    end.

send(Server, To, Text, Deadline) ->
    Server ! {self(), message_to, To, Text},
    receive
        {messenger, sent} ->
            log("sent to ~tp: ~tp", [To, Text]);
        {messenger, receiver_not_found} ->
            case erlang:monotonic_time(millisecond) < Deadline of
                true -> timer:sleep(?RETRY_MS), send(Server, To, Text, Deadline);
                false -> fail("~tp never logged on", [To])
            end;
        {messenger, stop, Why} ->
            fail("server stopped us: ~tp", [Why])
    after ?REPLY_TIMEOUT_MS ->
        fail("no answer to message_to", [])
    end.

listen(ServerNode) ->
    receive
        {message_from, From, Message} ->
            log("message from ~tp: ~tp", [From, Message]);
        {nodedown, ServerNode} ->
            fail("server node ~ts went down", [ServerNode]);
        Other ->
            log("unexpected message: ~tp", [Other])
    end,
    listen(ServerNode).

log(Format, Args) ->
    io:format("[~ts] " ++ Format ++ "~n", [get(name) | Args]).

fail(Format, Args) ->
    log("error: " ++ Format, Args),
    erlang:halt(1).
