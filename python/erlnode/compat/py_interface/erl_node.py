"""py_interface's node and mailbox classes on top of :class:`erlnode.Node`.

As in py_interface, a mailbox's callback, like every timer and node up/down callback, runs on
the thread that runs the event handler's ``Loop()``: erlnode delivers each message to a small
forwarding function on its dispatcher thread, which posts it to the event loop.

Example::

    from erlnode.compat.py_interface import erl_eventhandler, erl_node, erl_opts

    node = erl_node.ErlNode("py", erl_opts.ErlNodeOpts(cookie="secret"))
    node.Publish()
    mbox = node.CreateMBox(lambda msg: print("got", msg))
    mbox.RegisterName("py_echo")
    erl_eventhandler.GetEventHandler().Loop()
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Union

import erlnode
from erlnode import Atom

from . import erl_common, erl_eventhandler, erl_opts, erl_term

M = "erl_node"
# The value py_interface 2.3 carried (its node code's own version, not the package's).
py_interface_version = "0.9"

MsgCallback = Callable[..., Any]
Dest = Union[erl_term.ErlPid, erlnode.Pid, str, bytes, tuple[Any, Any]]


class ErlNodeBadPeerNameError(ValueError):
    """A node name without ``@`` where a full name is needed (``reason`` is the name).

    Example::

        try:
            node.Ping("nohost", print)
        except erl_node.ErlNodeBadPeerNameError as e:
            print("bad name", e.reason)
    """

    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason


class ErlNodeIsRegisteredError(Exception):
    """The name is taken, or the mailbox already has one (``reason`` is the name).

    Example::

        mbox.RegisterName("a")
        try:
            mbox.RegisterName("b")
        except erl_node.ErlNodeIsRegisteredError:
            pass
    """

    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason


class ErlNodeNotRegisteredError(Exception):
    """``UnregisterName`` on a mailbox that has no name.

    Example::

        try:
            mbox.UnregisterName()
        except erl_node.ErlNodeNotRegisteredError:
            pass
    """

    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason


class ErlNodeConnectionFailedError(Exception):
    """The node could not register with EPMD (``reason`` says why). erlnode registers when the
    node is created, so the constructor raises erlnode's own error instead; kept for programs
    that catch it.

    Example::

        try:
            node = erl_node.ErlNode("py")
        except (erl_node.ErlNodeConnectionFailedError, erlnode.EpmdError) as e:
            print(e)
    """

    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason


def _text(name: Any) -> str:
    """A name given as str, bytes (latin-1) or atom, as a str."""
    if isinstance(name, bytes):
        return name.decode("latin-1")
    return str(name)


class ErlMBox:
    """A mailbox: the Python equivalent of an Erlang process. Create it with
    :meth:`ErlNode.CreateMBox`.

    ``pid`` is there for py_interface's signature, where the node made the pid and passed it
    in: erlnode gives each mailbox its own pid, so a pid passed here is ignored.

    Example::

        mbox = node.CreateMBox(on_message)      # on_message(msg) runs in the event loop
        mbox.Send(("shell", "erl@host"), (mbox.Self(), erl_term.ErlAtom("hello")))
    """

    def __init__(
        self, node: ErlNode, pid: Any = None, msgCallback: MsgCallback | None = None
    ) -> None:
        self._node = node
        self._msgCallback: MsgCallback = msgCallback if msgCallback is not None else _Sink
        self._evhandler = erl_eventhandler.GetEventHandler()
        self._mailbox = node._node.mailbox(callback=self._Arrived)
        self._pid: erl_term.ErlPid = erl_term.FromErlnode(self._mailbox.pid)

    def Self(self) -> erl_term.ErlPid:
        """This mailbox's pid.

        Example::

            mbox.Send(dest, (mbox.Self(), erl_term.ErlAtom("ping")))
        """
        return self._pid

    def Send(self, dest: Dest, msg: Any) -> None:
        """Sends MSG to DEST: a pid, a name registered on this node (str or atom), or a tuple
        (registered name, node name). Connects to the node first when needed.

        Example::

            mbox.Send(("messenger", "server@host"), (mbox.Self(), erl_term.ErlAtom("logon")))
        """
        self._node.SendMsgFromMBox(self, dest, msg)

    def RegisterName(self, name: str) -> None:
        """Registers this mailbox under NAME so that others can send to the name.

        Raises :class:`ErlNodeIsRegisteredError` if the name is taken or this mailbox already
        has one.

        Example::

            mbox.RegisterName("pyclient")    # Erlang: {pyclient, 'py@host'} ! Msg
        """
        self._node.RegisterNameForMBox(self, name)

    def UnregisterName(self) -> None:
        """Removes this mailbox's registered name; :class:`ErlNodeNotRegisteredError` if it
        has none.

        Example::

            mbox.UnregisterName()
        """
        self._node.UnregisterNameForMBox(self)

    def Link(self, otherEnd: Any) -> None:
        """Does nothing, as in py_interface. (A process that links to this mailbox from Erlang
        is linked: it gets an exit signal when the mailbox or the node closes.)

        Example::

            mbox.Link(pid)
        """

    def Unlink(self, otherEnd: Any) -> None:
        """Does nothing, as in py_interface.

        Example::

            mbox.Unlink(pid)
        """

    def SendRPC(
        self,
        remoteNode: str,
        mod: str,
        fun: str,
        args: list[Any],
        cb: Callable[[Any], Any],
    ) -> None:
        """Calls ``MOD:FUN(ARGS...)`` on REMOTENODE through its ``rex`` server; CB is called (in
        the event loop) with the result, or with ``('EXIT', ('nodedown', REMOTENODE))`` when
        the node goes down (or cannot be reached) before it answers.

        Example::

            mbox.SendRPC("erl@host", "erlang", "node", [], lambda result: print(result))
        """
        self._node._SendRPC(remoteNode, mod, fun, args, cb)

    def Msg(self, sourceNodeName: Any, msg: Any) -> None:
        """Hands MSG to the mailbox's callback (called by the node, in the event loop; erlnode
        does not say which node a message came from, so SOURCENODENAME is None).

        Example::

            mbox.Msg(None, "a message")   # as if it had arrived
        """
        self._msgCallback(msg)

    def Close(self) -> None:
        """erlnode addition: closes the mailbox (and frees its name); processes linked to it
        get an exit signal.

        Example::

            mbox.Close()
        """
        if self in self._node._registeredPids:
            self._node.UnregisterNameForMBox(self)
        self._mailbox.close()

    def _Arrived(self, msg: Any) -> None:
        # On erlnode's dispatcher thread: only hand the message over to the event loop.
        self._evhandler.Post(lambda: self.Msg(None, erl_term.FromErlnode(msg)))


def _Sink(*args: Any, **kwargs: Any) -> None:
    """Where messages to a mailbox created without a callback go."""


def _Dest(dest: Dest) -> Any:
    if isinstance(dest, tuple):
        name, node = dest
        return (Atom(_text(name)), _text(node))
    if isinstance(dest, (str, bytes)):
        return Atom(_text(dest))
    return erl_term.ToErlnode(dest)


class ErlNode:
    """A node of an Erlang cluster: a Python program erl nodes can send to and connect to.

    NODENAME is ``name`` or ``name@host``; without a host part the short or fully qualified
    host name is added, as OPTS says (short by default). The node is registered with EPMD as
    it is created. From OPTS, the cookie, the tick time and the EPMD port are used.

    Example::

        opts = erl_opts.ErlNodeOpts(cookie="secret", shortNodeNames=0)
        node = erl_node.ErlNode("py@127.0.0.1", opts)
        node.Ping("erl@127.0.0.1", lambda result: print(result))   # "pong" or "pang"
        erl_eventhandler.GetEventHandler().Loop()
    """

    # The control message operations of the distribution protocol, as py_interface named them.
    CTRLMSGOP_LINK = 1
    CTRLMSGOP_SEND = 2
    CTRLMSGOP_EXIT = 3
    CTRLMSGOP_UNLINK = 4
    CTRLMSGOP_NODE_LINK = 5
    CTRLMSGOP_REG_SEND = 6
    CTRLMSGOP_GROUP_LEADER = 7
    CTRLMSGOP_EXIT2 = 8
    CTRLMSGOP_SEND_TT = 12
    CTRLMSGOP_EXIT_TT = 13
    CTRLMSGOP_REG_SEND_TT = 16
    CTRLMSGOP_EXIT2_TT = 18
    CTRLMSGOP_MONITOR_P = 19
    CTRLMSGOP_DEMONITOR_P = 20
    CTRLMSGOP_MONITOR_P_EXIT = 21

    def __init__(self, nodeName: str, opts: erl_opts.ErlNodeOpts | None = None) -> None:
        self._opts = opts if opts is not None else erl_opts.ErlNodeOpts()
        self._nodeName = erl_common.AlignNodeName(nodeName, self._opts.GetShortNodeNames())
        epmdPort = self._opts.GetEpmdPort()
        self._node = erlnode.Node(
            self._nodeName,
            cookie=self._opts.GetCookie() or None,
            ticktime=self._opts.GetNetTickTime(),
            # The default port means erlnode's default: ERL_EPMD_PORT, else 4369, as erl.
            epmd_port=None if epmdPort == erl_opts.EPMD_PORT else epmdPort,
        )
        self._evhandler = erl_eventhandler.GetEventHandler()
        self._isServerPublished = False
        self._epmdConnectedOkCb: Callable[[], Any] = _Sink
        # Registered names: the compat mailbox and the erlnode mailbox that holds the name
        # (its messages go to the compat mailbox's callback), so the name can be given up.
        self._registeredNames: dict[str, ErlMBox] = {}
        self._registeredPids: dict[ErlMBox, str] = {}
        self._nameHolders: dict[str, erlnode.Mailbox] = {}
        # Node up/down subscriptions, and the erlnode subscription that feeds them.
        self._nodeUpCb: list[tuple[int, Callable[[str, str], Any]]] = []
        self._nodeDownCb: list[tuple[int, Callable[[str, str], Any]]] = []
        self._cbId = 0
        # Watched from the start, so that only nodes seen coming up are reported going down
        # (erlnode also reports failed connection attempts as nodedown; py_interface did not).
        self._nodesUp: set[str] = set()
        self._node.monitor_nodes(self._NodeEvent)

    def CreateMBox(self, msgCallback: MsgCallback | None = None) -> ErlMBox:
        """A new mailbox whose incoming messages are passed to ``msgCallback(msg)`` from the
        event loop.

        Example::

            mbox = node.CreateMBox(lambda msg: print(msg))
        """
        return ErlMBox(self, msgCallback=msgCallback)

    def Ping(self, remoteNodeName: str, pingCallback: Callable[[str], Any]) -> None:
        """Connects to REMOTENODENAME; ``pingCallback("pong")`` or ``pingCallback("pang")`` is
        called later from the event loop. :class:`ErlNodeBadPeerNameError` for a name without
        ``@``.

        Example::

            node.Ping("erl@host", lambda result: print(result))
        """
        remote = _text(remoteNodeName)
        if "@" not in remote:
            raise ErlNodeBadPeerNameError(remoteNodeName)

        def ping() -> None:
            result = "pong" if self._node.ping(remote) else "pang"
            self._evhandler.Post(lambda: pingCallback(result))

        threading.Thread(target=ping, name=f"ping {remote}", daemon=True).start()

    def Publish(self) -> None:
        """Marks the node published. erlnode registers the node with EPMD as it starts, so
        this only calls the callback set with :meth:`SetEpmdConnectedOkCb` (from the event
        loop), as py_interface did once EPMD had answered.

        Example::

            node.SetEpmdConnectedOkCb(lambda: print("published"))
            node.Publish()
        """
        if not self._isServerPublished:
            self._isServerPublished = True
            # Read when it runs: py_interface let the callback be set after Publish().
            self._evhandler.Post(lambda: self._epmdConnectedOkCb())

    def Unpublish(self) -> None:
        """Marks the node unpublished. erlnode keeps the node registered with EPMD until it is
        closed (:meth:`Close`).

        Example::

            node.Unpublish()
        """
        self._isServerPublished = False

    def SetEpmdConnectedOkCb(self, cb: Callable[[], Any]) -> None:
        """Sets the callback :meth:`Publish` calls (with no arguments, from the event loop)
        once the node is registered with EPMD.

        Example::

            node.SetEpmdConnectedOkCb(lambda: mbox.Send(dest, "node is up"))
        """
        self._epmdConnectedOkCb = cb

    # -- node up/down --------------------------------------------------------------------------

    def NodeUpSubscribe(self, cb: Callable[[str, str], Any]) -> int:
        """Calls ``cb("nodeup", nodeName)`` (in the event loop) for every connection to
        another node that comes up; returns an id for :meth:`NodeUpUnsubscribe`.

        Example::

            sub = node.NodeUpSubscribe(lambda event, name: print(event, name))
        """
        id = self._NextCbId()
        self._nodeUpCb.append((id, cb))
        return id

    def NodeUpUnsubscribe(self, id: int) -> None:
        """Stops the callback subscribed under ID.

        Example::

            node.NodeUpUnsubscribe(sub)
        """
        self._nodeUpCb = [(i, cb) for i, cb in self._nodeUpCb if i != id]

    def NodeDownSubscribe(self, cb: Callable[[str, str], Any]) -> int:
        """Calls ``cb("nodedown", nodeName)`` (in the event loop) for every connection to
        another node that goes down; returns an id for :meth:`NodeDownUnsubscribe`.

        Example::

            sub = node.NodeDownSubscribe(lambda event, name: print(event, name))
        """
        id = self._NextCbId()
        self._nodeDownCb.append((id, cb))
        return id

    def NodeDownUnsubscribe(self, id: int) -> None:
        """Stops the callback subscribed under ID.

        Example::

            node.NodeDownUnsubscribe(sub)
        """
        self._nodeDownCb = [(i, cb) for i, cb in self._nodeDownCb if i != id]

    def _NextCbId(self) -> int:
        self._cbId += 1
        return self._cbId

    def _NodeEvent(self, event: Atom, nodeName: str) -> None:
        # On erlnode's dispatcher thread: the subscribers are called in the loop, with the
        # subscriptions as they are then.
        up = event == "nodeup"
        if up:
            self._nodesUp.add(nodeName)
        elif nodeName in self._nodesUp:
            self._nodesUp.discard(nodeName)
        else:
            return

        def notify() -> None:
            for _, cb in list(self._nodeUpCb if up else self._nodeDownCb):
                cb(str(event), nodeName)

        self._evhandler.Post(notify)

    # -- names ---------------------------------------------------------------------------------

    def RegisterNameForMBox(self, mbox: ErlMBox, name: str) -> None:
        """Registers MBOX under NAME (what :meth:`ErlMBox.RegisterName` does).

        Example::

            node.RegisterNameForMBox(mbox, "pyclient")
        """
        name = _text(name)
        if name in self._registeredNames or mbox in self._registeredPids:
            raise ErlNodeIsRegisteredError(name)
        try:
            # A mailbox of its own holds the name, so that UnregisterName can give it up by
            # closing it; what it receives goes to MBOX's callback.
            holder = self._node.mailbox(name, callback=mbox._Arrived)
        except erlnode.NodeClosedError:
            raise
        except Exception as e:  # the name is taken by erlnode itself (e.g. "rex")
            raise ErlNodeIsRegisteredError(name) from e
        self._registeredNames[name] = mbox
        self._registeredPids[mbox] = name
        self._nameHolders[name] = holder

    def UnregisterNameForMBox(self, mbox: ErlMBox) -> None:
        """Frees MBOX's registered name (what :meth:`ErlMBox.UnregisterName` does).

        Example::

            node.UnregisterNameForMBox(mbox)
        """
        if mbox not in self._registeredPids:
            raise ErlNodeNotRegisteredError(f"pid not registered {mbox!r}")
        name = self._registeredPids.pop(mbox)
        del self._registeredNames[name]
        self._nameHolders.pop(name).close()

    def WhereisMBox(self, name: str) -> ErlMBox | None:
        """The mailbox registered under NAME, or None.

        Example::

            assert node.WhereisMBox("pyclient") is mbox
        """
        return self._registeredNames.get(_text(name))

    def WhereisPid(self, name: str) -> erl_term.ErlPid | None:
        """The pid of the mailbox registered under NAME, or None.

        Example::

            assert node.WhereisPid("pyclient") == mbox.Self()
        """
        mbox = self.WhereisMBox(name)
        return None if mbox is None else mbox.Self()

    # -- sending -------------------------------------------------------------------------------

    def SendMsgFromMBox(self, sourceMBox: ErlMBox, dest: Dest, msg: Any) -> None:
        """Sends MSG from SOURCEMBOX to DEST (what :meth:`ErlMBox.Send` does).

        Example::

            node.SendMsgFromMBox(mbox, ("messenger", "server@host"), "hello")
        """
        sourceMBox._mailbox.send(_Dest(dest), erl_term.ToErlnode(msg))

    def DumpConnections(self) -> None:
        """Prints the names of the nodes this node is connected to.

        Example::

            node.DumpConnections()
        """
        print("Connections:")
        for name in self._node.connected_nodes():
            print(f"  {name}")
        print("--")

    def Close(self) -> None:
        """erlnode addition: closes the node (connections, mailboxes, EPMD registration).

        Example::

            node.Close()
        """
        self._node.close()

    def _SendRPC(
        self,
        remoteNode: Any,
        mod: Any,
        fun: Any,
        args: list[Any],
        cb: Callable[[Any], Any],
    ) -> None:
        # A mailbox per call: rex answers {rex, Result} to the calling pid, and a fresh pid
        # tells which call an answer belongs to without relying on answer order. A node
        # monitor turns a lost node into py_interface's {'EXIT', {nodedown, Node}}.
        remote = _text(remoteNode)
        done = False

        def finish(result: Any) -> None:  # in the loop
            nonlocal done
            if done:
                return
            done = True
            caller.Close()
            watcher.close()
            cb(result)

        def answered(msg: Any) -> None:
            if isinstance(msg, tuple) and len(msg) == 2 and msg[0] == "rex":
                finish(msg[1])
            else:
                erl_common.Debug(M, f"unexpected answer to an rpc: {msg!r}")

        def nodedown(event: Atom, nodeName: str) -> None:  # on erlnode's thread
            exit = (
                erl_term.ErlAtom("EXIT"),
                (erl_term.ErlAtom("nodedown"), erl_term.ErlAtom(nodeName)),
            )
            self._evhandler.Post(lambda: finish(exit))

        caller = ErlMBox(self, msgCallback=answered)
        watcher = self._node.monitor_node(remote, nodedown)
        request = (
            caller.Self(),
            (Atom("call"), Atom(_text(mod)), Atom(_text(fun)), list(args), Atom("user")),
        )
        caller.Send((Atom("rex"), remote), request)
