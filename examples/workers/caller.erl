%% An Erlang caller that spreads CPU-bound requests over Python workers found through pg.
%%
%% It knows the workers only by their process group: every request takes the group's members
%% now (pg:get_members/1), picks one in turn, and makes a gen_server:call. A worker that dies
%% during the call (killed, or its node lost) makes the call exit; the request is then sent
%% again to another member, as the request is idempotent. So every request ends with an
%% answer, or with an error once its attempts are used up: none is left without either.
%%
%%   erl -sname caller -setcookie secret -noshell -pa . -eval 'caller:main()' \
%%       -extra primes 200 4 2 60000
%%
%% (group, requests, concurrent callers, members to wait for, the `count_primes` limit).
%% It prints what it does, one line at a time; the last line is the summary:
%%   done total=200 answered=200 errors=0 retries=2 seconds=3.1
-module(caller).
-export([main/0, run/4, call/4]).

-define(CALL_TIMEOUT, 30000).
-define(ATTEMPTS, 5).
-define(MEMBERS_TIMEOUT_MS, 30000).

main() ->
    [GroupS, TotalS, ConcS, MinS, LimitS] = init:get_plain_arguments(),
    Group = list_to_atom(GroupS),
    [Total, Conc, Min, Limit] = [list_to_integer(S) || S <- [TotalS, ConcS, MinS, LimitS]],
    %% The default pg scope; the Python workers' scopes find it when they connect.
    {ok, _} = pg:start_link(),
    %% The demo stops us by closing our standard input.
    spawn_link(fun halt_on_eof/0),
    io:format("caller ~s up~n", [node()]),
    ok = wait_members(Group, Min, ?MEMBERS_TIMEOUT_MS),
    io:format("members ~b: ~p~n", [Min, [node(P) || P <- pg:get_members(Group)]]),
    {Micros, Outcomes} = timer:tc(?MODULE, run, [Group, Total, Conc, Limit]),
    Results = [Result || {Result, _} <- Outcomes],
    Answered = [R || {ok, R} <- Results],
    Errors = [E || {error, E} <- Results],
    Retries = lists:sum([N || {_, N} <- Outcomes]),
    [io:format("error: ~p~n", [E]) || E <- Errors],
    Tally = fun({_, _, Node}, Acc) -> maps:update_with(Node, fun(C) -> C + 1 end, 1, Acc) end,
    ByNode = lists:foldl(Tally, #{}, Answered),
    io:format("answers per worker node: ~p~n", [ByNode]),
    %% The answers agree: every worker computes the same thing.
    Counts = lists:usort([Count || {_, Count, _} <- Answered]),
    io:format("prime counts seen: ~p~n", [Counts]),
    Back = wait_members(Group, Min, ?MEMBERS_TIMEOUT_MS),
    io:format("members again ~b: ~p~n", [length(pg:get_members(Group)), Back]),
    io:format("done total=~b answered=~b errors=~b retries=~b seconds=~.1f~n",
              [length(Results), length(Answered), length(Errors), Retries, Micros / 1.0e6]),
    halt(0).

%% Runs `Total` requests with `Conc` concurrent callers; returns `{Result, Retries}` for
%% each request.
run(Group, Total, Conc, Limit) ->
    Counter = atomics:new(1, []),
    Self = self(),
    Callers = [spawn_link(fun() -> caller_loop(Group, Total, Limit, Counter, Self) end)
               || _ <- lists:seq(1, Conc)],
    collect(Callers, Total, [], 0).

caller_loop(Group, Total, Limit, Counter, Collector) ->
    Seq = atomics:add_get(Counter, 1, 1),
    case Seq =< Total of
        true ->
            {Result, Retries} = call(Group, {count_primes, Limit}, Seq, ?ATTEMPTS),
            Collector ! {result, Seq, Result, Retries},
            caller_loop(Group, Total, Limit, Counter, Collector);
        false ->
            Collector ! {finished, self()}
    end.

collect([], _Total, Outcomes, _Done) ->
    Outcomes;
collect(Callers, Total, Outcomes, Done) ->
    receive
        {result, _Seq, Result, Retries} ->
            Done1 = Done + 1,
            case Done1 rem max(1, Total div 10) of
                0 -> io:format("progress ~b/~b~n", [Done1, Total]);
                _ -> ok
            end,
            collect(Callers, Total, [{Result, Retries} | Outcomes], Done1);
        {finished, Pid} ->
            collect(lists:delete(Pid, Callers), Total, Outcomes, Done)
    end.

%% One request: a member in turn, gen_server:call, another member if that one dies.
call(Group, Request, Seq, Attempts) ->
    call(Group, Request, Seq, Attempts, 0).

call(Group, Request, Seq, Attempts, Retries) ->
    case pg:get_members(Group) of
        [] when Attempts > 1 ->
            timer:sleep(200),
            call(Group, Request, Seq, Attempts - 1, Retries + 1);
        [] ->
            {{error, no_members}, Retries};
        Members ->
            Member = lists:nth(1 + (Seq + Retries) rem length(Members), Members),
            try gen_server:call(Member, Request, ?CALL_TIMEOUT) of
                Reply -> {{ok, Reply}, Retries}
            catch
                exit:Reason when Attempts > 1 ->
                    io:format("retry: ~p failed: ~p~n", [node(Member), short(Reason)]),
                    call(Group, Request, Seq, Attempts - 1, Retries + 1);
                exit:Reason ->
                    {{error, short(Reason)}, Retries}
            end
    end.

short({Reason, {gen_server, call, _}}) -> Reason;
short(Reason) -> Reason.

wait_members(Group, Min, TimeLeft) ->
    case length(pg:get_members(Group)) >= Min of
        true -> ok;
        false when TimeLeft =< 0 -> {error, {members, pg:get_members(Group)}};
        false -> timer:sleep(50), wait_members(Group, Min, TimeLeft - 50)
    end.

halt_on_eof() ->
    case io:get_line("") of
        eof -> halt(1);
        {error, _} -> halt(1);
        _ -> halt_on_eof()
    end.
