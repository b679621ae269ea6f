"""A py_interface program, run by tests/test_compat_py_interface.py: a node with a long name
that echoes messages, reads commands from stdin through the event loop, and reports timers,
publication and node up/down events on stdout.

Written as py_interface programs are (callbacks on one event loop, no threads); only the
import line says erlnode. Usage: py_interface_console.py NAME@127.0.0.1 COOKIE

Commands (one per line): ping NODE | rpc NODE MOD FUN INT... | whereis NAME | register NAME |
unregister | unsubscribe | send NAME NODE TEXT | quit
"""

import sys

from erlnode.compat.py_interface import erl_eventhandler, erl_node, erl_opts, erl_term


def say(*parts):
    print(*parts, flush=True)


ownNodeName, cookie = sys.argv[1:3]
node = erl_node.ErlNode(ownNodeName, erl_opts.ErlNodeOpts(cookie=cookie, shortNodeNames=0))
evhand = erl_eventhandler.GetEventHandler()
node.SetEpmdConnectedOkCb(lambda: say("published", ownNodeName))
node.Publish()
subscriptions = [
    ("up", node.NodeUpSubscribe(lambda event, name: say(event, name))),
    ("down", node.NodeDownSubscribe(lambda event, name: say(event, name))),
]


def echo(msg):
    # {From, Term}: answer {echo, Term}.
    if type(msg) is tuple and len(msg) == 2 and erl_term.IsErlPid(msg[0]):
        mbox.Send(msg[0], (erl_term.ErlAtom("echo"), msg[1]))
    say("got", repr(msg))


mbox = node.CreateMBox(echo)
mbox.RegisterName("console")

ticks = []


def tick(n):
    ticks.append(n)
    say("tick", n)
    if n < 3:
        evhand.AddTimerEvent(0.05, tick, n + 1)


evhand.AddTimerEvent(0.05, tick, 1)


def command():
    line = sys.stdin.readline()
    if not line:
        evhand.StopLooping()
        return
    cmd, *args = line.split()
    if cmd == "ping":
        node.Ping(args[0], lambda result: say("ping", args[0], result))
    elif cmd == "rpc":
        remote, mod, fun, *ints = args
        mbox.SendRPC(remote, mod, fun, [int(i) for i in ints], lambda r: say("rpc", repr(r)))
    elif cmd == "whereis":
        say("whereis", args[0], node.WhereisPid(args[0]) == mbox.Self())
    elif cmd == "register":
        mbox.RegisterName(args[0])
        say("registered", args[0])
    elif cmd == "unregister":
        mbox.UnregisterName()
        say("unregistered", node.WhereisMBox("console"))
    elif cmd == "unsubscribe":
        for kind, id in subscriptions:
            if kind == "up":
                node.NodeUpUnsubscribe(id)
            else:
                node.NodeDownUnsubscribe(id)
        say("unsubscribed")
    elif cmd == "send":
        name, remote, text = args
        mbox.Send((name, remote), (mbox.Self(), text))
    elif cmd == "quit":
        evhand.StopLooping()


evhand.PushReadEvent(sys.stdin, command)
evhand.Loop()
node.Close()
say("bye")
