%% The messenger server from the Erlang "Getting Started" guide (concurrent programming chapter),
%% written afresh for erlnode's example: Python clients (erlnode, or py_interface programs through
%% erlnode.compat) and Erlang clients log on to it and send each other messages.
%%
%% Protocol (every request carries the client's pid as From):
%%   {From, logon, Name}               -> {messenger, logged_on}
%%                                        | {messenger, stop, user_exists_at_other_node}
%%   {From, logoff}                    -> (no reply)
%%   {From, message_to, To, Message}   -> {messenger, sent} | {messenger, receiver_not_found}
%%                                        | {messenger, stop, you_are_not_logged_on}
%%                                        and the recipient gets {message_from, Name, Message}
%%
%% The server links to every client and traps exits, so a client that dies, closes its mailbox or
%% whose node goes away is logged off without having to say so: that is how a Python client that
%% simply stops is seen leaving.
%%
%% Names are atoms, as in the guide; strings and binaries are accepted too and turned into atoms,
%% so a client may send either.
%%
%% Run it:  erl -sname messenger -setcookie COOKIE -noshell -s messenger start
%% Every event is printed on one line starting with "[messenger]" so a script can follow along.
-module(messenger).
-export([start/0, stop/0, halt_on_eof/0]).

-define(SERVER, messenger).

%% Starts the server and registers it as `messenger`.
start() ->
    Pid = spawn(fun init/0),
    register(?SERVER, Pid),
    log("started on node ~ts", [node()]),
    Pid.

stop() ->
    case whereis(?SERVER) of
        undefined -> ok;
        Pid -> exit(Pid, kill), ok
    end.

%% Halts this node when its standard input closes. A script that starts the node with a pipe as
%% stdin (examples/messenger/demo.py, the tests) thereby never leaves a node behind, even if the
%% script itself is killed.
halt_on_eof() ->
    spawn(fun wait_for_eof/0),
    ok.

wait_for_eof() ->
    case io:get_line("") of
        eof -> erlang:halt(0);
        {error, _} -> erlang:halt(0);
        _ -> wait_for_eof()
    end.

init() ->
    process_flag(trap_exit, true),
    loop([]).

%% Users is [{Pid, Name}].
loop(Users) ->
    receive
        {From, logon, Name} when is_pid(From) ->
            loop(logon(From, to_name(Name), Users));
        {From, logoff} when is_pid(From) ->
            loop(logoff(From, Users));
        {From, message_to, To, Message} when is_pid(From) ->
            transfer(From, to_name(To), Message, Users),
            loop(Users);
        {'EXIT', Pid, Reason} ->
            loop(exited(Pid, Reason, Users));
        Other ->
            log("ignored unexpected message ~tp", [Other]),
            loop(Users)
    end.

logon(From, Name, Users) ->
    case lists:keyfind(Name, 2, Users) of
        {From, Name} ->
            From ! {?SERVER, logged_on},
            Users;
        {_OtherPid, Name} ->
            log("logon refused: ~tp is already logged on elsewhere", [Name]),
            From ! {?SERVER, stop, user_exists_at_other_node},
            Users;
        false ->
            %% A pid that logs on again under a new name drops its old name.
            Rest = lists:keydelete(From, 1, Users),
            link(From),
            log("logon: ~tp (pid ~p on node ~ts)", [Name, From, node(From)]),
            From ! {?SERVER, logged_on},
            [{From, Name} | Rest]
    end.

logoff(From, Users) ->
    case lists:keyfind(From, 1, Users) of
        {From, Name} ->
            unlink(From),
            %% An exit signal may have arrived before the unlink; it must not log the user off
            %% a second time later.
            receive {'EXIT', From, _} -> ok after 0 -> ok end,
            log("logoff: ~tp", [Name]),
            lists:keydelete(From, 1, Users);
        false ->
            Users
    end.

exited(Pid, Reason, Users) ->
    case lists:keyfind(Pid, 1, Users) of
        {Pid, Name} ->
            log("EXIT: ~tp (pid ~p) left with reason ~tp, logged off", [Name, Pid, Reason]),
            lists:keydelete(Pid, 1, Users);
        false ->
            Users
    end.

transfer(From, To, Message, Users) ->
    case lists:keyfind(From, 1, Users) of
        false ->
            From ! {?SERVER, stop, you_are_not_logged_on};
        {From, Name} ->
            case lists:keyfind(To, 2, Users) of
                false ->
                    log("transfer: ~tp -> ~tp: receiver not found", [Name, To]),
                    From ! {?SERVER, receiver_not_found};
                {ToPid, To} ->
                    log("transfer: ~tp -> ~tp: ~tp", [Name, To, Message]),
                    ToPid ! {message_from, Name, Message},
                    From ! {?SERVER, sent}
            end
    end.

to_name(Name) when is_atom(Name) -> Name;
to_name(Name) when is_binary(Name) -> atom_or_self(Name, fun(N) -> binary_to_atom(N, utf8) end);
to_name(Name) when is_list(Name) -> atom_or_self(Name, fun erlang:list_to_atom/1);
to_name(Name) -> Name.

%% A name that cannot be an atom (not text, too long) stays as it is: it can still match itself.
atom_or_self(Name, ToAtom) ->
    try ToAtom(Name) catch error:_ -> Name end.

log(Format, Args) ->
    io:format("[messenger] " ++ Format ++ "~n", Args).
