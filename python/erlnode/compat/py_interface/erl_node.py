"""py_interface's node and mailbox classes on top of :class:`erlnode.Node`.

As in py_interface, a mailbox's callback, like every timer, runs on the thread that runs the
event handler's ``Loop()``: erlnode delivers each message to a small forwarding function on its
dispatcher thread, which posts it to the event loop.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Union

import erlnode
from erlnode import Atom

from . import erl_common, erl_eventhandler, erl_opts, erl_term

M = "erl_node"

MsgCallback = Callable[..., Any]
Dest = Union[erlnode.Pid, str, tuple[str, str]]


class ErlMBox:
    """A mailbox: the Python equivalent of an Erlang process. Create it with
    :meth:`ErlNode.CreateMBox`."""

    def __init__(self, node: ErlNode, msgCallback: MsgCallback | None = None) -> None:
        self._node = node
        self._msgCallback: MsgCallback = msgCallback if msgCallback is not None else _Sink
        self._evhandler = erl_eventhandler.GetEventHandler()
        self._mailbox = node._node.mailbox(callback=self._Arrived)
        self._pid = self._mailbox.pid

    def Self(self) -> erlnode.Pid:
        """This mailbox's pid."""
        return self._pid

    def Send(self, dest: Dest, msg: Any) -> None:
        """Sends MSG to DEST: a pid, a name registered on this node (str or atom), or a tuple
        (registered name, node name). Connects to the node first when needed."""
        self._mailbox.send(_Dest(dest), msg)

    def RegisterName(self, name: str) -> None:
        """Registers this mailbox under NAME so that others can send to the name."""
        self._mailbox.register(str(name))

    def Link(self, otherEnd: erlnode.Pid) -> None:
        """Does nothing, as in py_interface. (A process that links to this mailbox from Erlang
        is linked: it gets an exit signal when the mailbox or the node closes.)"""

    def Unlink(self, otherEnd: erlnode.Pid) -> None:
        """Does nothing, as in py_interface."""

    def SendRPC(
        self,
        remoteNode: str,
        mod: str,
        fun: str,
        args: list[Any],
        cb: Callable[[Any], Any],
    ) -> None:
        """Calls ``MOD:FUN(ARGS...)`` on REMOTENODE through its ``rex`` server; CB is called (in
        the event loop) with the result."""
        self._node._SendRPC(remoteNode, mod, fun, args, cb)

    def Close(self) -> None:
        """erlnode addition: closes the mailbox; processes linked to it get an exit signal."""
        self._mailbox.close()

    def _Arrived(self, msg: Any) -> None:
        # On erlnode's dispatcher thread: only hand the message over to the event loop.
        self._evhandler.Post(lambda: self._msgCallback(erl_term.FromErlnode(msg)))


def _Sink(*args: Any, **kwargs: Any) -> None:
    """Where messages to a mailbox created without a callback go."""


def _Dest(dest: Dest) -> Any:
    if isinstance(dest, tuple):
        name, node = dest
        return (Atom(str(name)), str(node))
    if isinstance(dest, str):
        return Atom(dest)
    return dest


class ErlNode:
    """A node of an Erlang cluster: a Python program erl nodes can send to and connect to."""

    def __init__(self, nodeName: str, opts: erl_opts.ErlNodeOpts | None = None) -> None:
        """NODENAME is ``name`` or ``name@host``; without a host part the short or fully
        qualified host name is added, as OPTS says (short by default)."""
        self._opts = opts if opts is not None else erl_opts.ErlNodeOpts()
        self._nodeName = erl_common.AlignNodeName(nodeName, self._opts.GetShortNodeNames())
        cookie = self._opts.GetCookie() or None
        self._node = erlnode.Node(self._nodeName, cookie=cookie)
        self._evhandler = erl_eventhandler.GetEventHandler()

    def CreateMBox(self, msgCallback: MsgCallback | None = None) -> ErlMBox:
        """A new mailbox whose incoming messages are passed to ``msgCallback(msg)`` from the
        event loop."""
        return ErlMBox(self, msgCallback)

    def Publish(self) -> None:
        """erlnode registers the node with EPMD as it starts, so there is nothing left to do."""

    def Unpublish(self) -> None:
        """Kept for compatibility: erlnode keeps the node registered until it is closed."""

    def Ping(self, remoteNodeName: str, pingCallback: Callable[[str], Any]) -> None:
        """Connects to REMOTENODENAME; ``pingCallback("pong")`` or ``pingCallback("pang")`` is
        called later from the event loop."""
        if "@" not in remoteNodeName:
            raise ValueError(f"bad node name for remote node {remoteNodeName!r}")

        def ping() -> None:
            result = "pong" if self._node.ping(str(remoteNodeName)) else "pang"
            self._evhandler.Post(lambda: pingCallback(result))

        threading.Thread(target=ping, name=f"ping {remoteNodeName}", daemon=True).start()

    def DumpConnections(self) -> None:
        """Prints the names of the nodes this node is connected to."""
        print("Connections:")
        for name in self._node.connected_nodes():
            print(f"  {name}")
        print("--")

    def Close(self) -> None:
        """erlnode addition: closes the node (connections, mailboxes, EPMD registration)."""
        self._node.close()

    def _SendRPC(
        self,
        remoteNode: str,
        mod: str,
        fun: str,
        args: list[Any],
        cb: Callable[[Any], Any],
    ) -> None:
        # A mailbox per call: rex answers {rex, Result} to the calling pid, and a fresh pid
        # tells which call an answer belongs to without relying on answer order.
        def answered(msg: Any) -> None:
            caller.Close()
            if isinstance(msg, tuple) and len(msg) == 2 and msg[0] == "rex":
                cb(msg[1])
            else:
                erl_common.Debug(M, f"unexpected answer to an rpc: {msg!r}")

        caller = ErlMBox(self, answered)
        request = (
            caller.Self(),
            (Atom("call"), Atom(str(mod)), Atom(str(fun)), list(args), Atom("user")),
        )
        caller.Send((Atom("rex"), str(remoteNode)), request)
