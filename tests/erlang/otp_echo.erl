%% A gen_server for tests/test_otp.py: Python calls and casts it.
-module(otp_echo).
-behaviour(gen_server).
-export([start/1, init/1, handle_call/3, handle_cast/2, handle_info/2]).

start(Name) -> gen_server:start({local, Name}, ?MODULE, [], []).

init([]) -> {ok, []}.

handle_call({sleep, Ms}, _From, S) -> timer:sleep(Ms), {reply, slept, S};
handle_call(crash, _From, _S) -> exit(crashed);
handle_call(get, _From, S) -> {reply, lists:reverse(S), S};
handle_call(Req, _From, S) -> {reply, {echo, Req}, S}.

handle_cast({store, X}, S) -> {noreply, [X | S]}.

handle_info(_, S) -> {noreply, S}.
