"""`Node` and `Mailbox`: the typed Python face of the Rust node."""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from typing import (
    TYPE_CHECKING,
    Any,
    AsyncIterator,
    Callable,
    Iterable,
    Literal,
    Optional,
    TypedDict,
    TypeVar,
    Union,
    cast,
)

from . import _erlnode, _landing, _logging, _rpc
from ._erlnode import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_TICKTIME,
    NativeMailbox,
    NativeNode,
    TLSConfig,
)

if TYPE_CHECKING:  # asyncio, global, pg: imported when first used (`import erlnode` stays fast)
    import asyncio

    from . import _global, _pg
from ._match import is_tuple
from ._terms import Atom

#: Where a message can go: a `Pid`, a registered name on this node, or `(name, node)`.
Dest = Union["_erlnode.Pid", str, "tuple[str, str]"]

#: Who hears about nodes coming and going: a mailbox (gets the messages) or a callable
#: (called as `f(event, node_name)` with event `"nodeup"` or `"nodedown"`).
NodeWatcher = Union["Mailbox", Callable[[Atom, str], Any]]

#: Who hears about a process group's joins and leaves (`Node.monitor_group`): a mailbox, or
#: a callable called as `f(event, group, pids)` with event `"join"` or `"leave"`.
GroupWatcher = Union["Mailbox", Callable[[Atom, Any, "list[_erlnode.Pid]"], Any]]

F = TypeVar("F", bound=Callable[..., Any])

#: How Erlang text arrives in Python and how a `str` is sent (`Node(strings=...)`, `decode`,
#: `encode`): see docs/types.md.
Strings = Literal["str", "erlang", "elixir"]


class ConnectionStats(TypedDict):
    """One connection of `Node.stats()`: what it carried since it came up, and how it stands.

    Example::

        conn = node.stats()["connections"]["erl@host"]
        if conn["send_queue"] > 10_000_000:
            log.warning("erl@host does not keep up: %d bytes queued", conn["send_queue"])
    """

    #: Bytes read from and written to the peer (ticks included).
    bytes_in: int
    bytes_out: int
    #: Signals received and sent: messages, and links, monitors, exits... (not ticks).
    messages_in: int
    messages_out: int
    #: Bytes sent but not yet written to the socket: a peer that does not keep up.
    send_queue: int
    #: Bytes of large binaries received (256 KiB and more) read from the socket straight
    #: into the `bytes` objects the program gets, and bytes of them copied there instead
    #: (what came before the object was made, or when no object could be made).
    bulk_landed: int
    bulk_copied: int
    #: Seconds since anything (a message or a tick) came from the peer; the peer counts as
    #: gone when this reaches the node's `ticktime`.
    last_in: float
    #: Seconds since anything was written to the peer (a tick fills silence).
    last_out: float
    #: When the connection came up (its handshake completed), as `time.time()` counts.
    up_since: float


class NodeStats(TypedDict):
    """What `Node.stats()` returns.

    Example::

        stats = node.stats()
        print(stats["mailboxes"], list(stats["connections"]))    # 3 ['erl@host']
    """

    #: Open mailboxes, the node's own included (the RPC server's `rex` and spawn handler).
    mailboxes: int
    #: One entry per live connection, keyed by the peer's node name.
    connections: dict[str, ConnectionStats]


_EMPTY = object()
_live_nodes: "weakref.WeakSet[Node]" = weakref.WeakSet()
_live_lock = threading.Lock()


class _LoopWaker:
    """Watches a mailbox's wake descriptor in one event loop and wakes waiting receivers.

    Registered once per (mailbox, loop), not per message: `add_reader`/`remove_reader` are
    system calls. Holds the native mailbox so the descriptor outlives the registration.
    """

    __slots__ = ("loop", "native", "fd", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop, native: NativeMailbox) -> None:
        self.loop = loop
        self.native = native
        self.fd = native.wake_fd()
        self.waiters: list[asyncio.Future[None]] = []
        loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        try:
            os.read(self.fd, 4096)
        except BlockingIOError:
            pass
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.remove_reader(self.fd)


class Mailbox:
    """A process of this node: it has a pid, may have a registered name, and receives messages.

    Example::

        with erlnode.Node("py", cookie="secret") as node:
            mbox = node.mailbox("echo")
            msg = mbox.receive(timeout=5.0)
            mbox.send(msg[0], erlnode.Atom("ok"))

    Messages stay encoded in the Rust core until received: `receive` decodes them in the
    calling thread. `receive` (blocking, releases the GIL), `receive_async` / `async for`
    (any running asyncio loop) and callback mode (`node.mailbox(callback=f)`) are three ways
    to take messages; use one per mailbox.
    """

    __slots__ = ("_native", "_node", "_waker", "__weakref__")

    def __init__(self, native: NativeMailbox, node: "Node") -> None:
        self._native = native
        self._waker: Optional[_LoopWaker] = None
        self._node = node

    @property
    def pid(self) -> "_erlnode.Pid":
        """This mailbox's pid (send it to Erlang so that it can answer).

        Example::

            mbox = node.mailbox()
            mbox.send(("server", "erl@host"), (Atom("subscribe"), mbox.pid))
        """
        return self._native.pid

    @property
    def name(self) -> Optional[str]:
        """The registered name, if any.

        Example::

            node.mailbox("echo").name       # 'echo'
            node.mailbox().name             # None
        """
        return self._native.name

    @property
    def node(self) -> "Node":
        """The node this mailbox belongs to.

        Example::

            mbox.node.name                  # 'py@host'
        """
        return self._node

    @property
    def closed(self) -> bool:
        """True once the mailbox (or its node) is closed.

        Example::

            mbox.close()
            mbox.closed                     # True
        """
        return self._native.closed

    def register(self, name: str) -> None:
        """Registers this mailbox under `name` (like `register/2`).

        Example::

            mbox = node.mailbox()
            mbox.register("logger")
            # Erlang: {logger, 'py@host'} ! {log, info, <<"started">>}
        """
        self._native.register(name)

    def qsize(self) -> int:
        """How many messages wait to be received: the backlog of a slow consumer.

        Example::

            if mbox.qsize() > 10_000:
                log.warning("falling behind")
        """
        return self._native.qsize()

    def set_queue_limit(self, limit: Optional[int]) -> None:
        """Lets at most `limit` messages wait (None, the default: no limit, as in Erlang).

        A message that arrives while `limit` wait is dropped and counted in `dropped`; the
        first drop and every 10,000th are logged (WARNING). The sender is not told: in
        Erlang a send never fails. Use it to protect memory from a consumer that may fall
        behind for good; without it, the queue grows as an Erlang process's does.

        Example::

            mbox.set_queue_limit(100_000)   # past 100,000 waiting: drop (and count) new ones
        """
        self._native.set_queue_limit(limit)

    @property
    def dropped(self) -> int:
        """How many messages a full queue dropped (see `set_queue_limit`).

        Example::

            if mbox.dropped:
                log.warning("%d messages dropped so far", mbox.dropped)
        """
        return self._native.dropped

    def send(self, dest: Dest, message: Any) -> None:
        """Sends `message` to a `Pid`, a local registered name or a `(name, node)` tuple.

        Like Erlang's `!`, it does not wait and does not fail for an unknown destination; a
        node not yet connected is connected on demand (messages wait for it in order).

        Example::

            mbox.send(("server", "erl@host"), (mbox.pid, Atom("ping")))   # {server, Node} ! ...
            mbox.send(sender_pid, b"reply")                                # a Pid
            mbox.send("logger", Atom("flush"))                             # a name on this node
        """
        self._native.send(dest, message)

    def send_many(self, dest: Dest, messages: Iterable[Any]) -> None:
        """Sends each of `messages` to `dest`, in order; for a peer, as one write.

        The batch form of `send` for message-heavy bridges: one call, one lock and one
        wake-up of the network thread for the whole batch.

        Example::

            mbox.send_many(("sink", "erl@host"), [(Atom("row"), i) for i in range(1000)])
        """
        self._native.send_many(dest, messages)

    def receive(self, timeout: Optional[float] = None) -> Any:
        """The next message, waiting up to `timeout` seconds (None: forever).

        Raises `TimeoutError` when none arrives in time, `NodeClosedError` once closed.

        Example::

            try:
                sender, request = mbox.receive(timeout=5.0)
            except TimeoutError:
                print("nothing in 5 s")
        """
        return self._native.receive(timeout)

    def receive_many(
        self,
        limit: Optional[int] = None,
        timeout: Optional[float] = None,
        *,
        max: Optional[int] = None,
    ) -> list[Any]:
        """Every waiting message, up to `limit` (None: 1024), waiting like `receive` for the
        first; the batch form of `receive` for message-heavy loops.

        `max` is the old name of `limit` and still works (passing both is a TypeError).

        Example::

            for msg in mbox.receive_many(timeout=1.0):
                handle(msg)
        """
        if max is None:
            return self._native.receive_many(limit, timeout)
        return self._native.receive_many(limit, timeout, max=max)

    async def receive_async(self, timeout: Optional[float] = None) -> Any:
        """`receive` for asyncio: awaits the next message without blocking the loop.

        The network thread makes a descriptor readable when messages arrive and the loop
        watches it, so waking costs no thread hop.

        Example::

            async def serve(mbox):
                while True:
                    sender, request = await mbox.receive_async()
                    mbox.send(sender, (Atom("reply"), request))

        `async for message in mbox:` does the same until the mailbox closes.
        """
        message = self._native.receive_soon(_EMPTY)
        if message is not _EMPTY:
            return message
        import asyncio

        loop = asyncio.get_running_loop()
        waker = self._waker
        if waker is None or waker.loop is not loop:
            if waker is not None:
                waker.close()
            waker = self._waker = _LoopWaker(loop, self._native)
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            woken: asyncio.Future[None] = loop.create_future()
            waker.waiters.append(woken)
            try:
                # A message may have come before the waiter was in place.
                message = self._native.try_receive(_EMPTY)
                if message is not _EMPTY:
                    return message
                if deadline is None:
                    await woken
                else:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise TimeoutError("no message within the timeout")
                    await asyncio.wait_for(woken, remaining)
            except asyncio.TimeoutError:
                raise TimeoutError("no message within the timeout") from None
            except _erlnode.NodeClosedError:
                waker.close()
                raise
            finally:
                if not woken.done():
                    woken.cancel()
                    if woken in waker.waiters:
                        waker.waiters.remove(woken)
            message = self._native.try_receive(_EMPTY)
            if message is not _EMPTY:
                return message

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            try:
                yield await self.receive_async()
            except _erlnode.NodeClosedError:
                return

    def close(self, reason: Any = None) -> None:
        """Closes the mailbox; linked and monitoring processes see `reason` (`normal`).

        Example::

            mbox.close(Atom("shutdown"))    # a linked Erlang process gets the exit signal shutdown
        """
        self._native.close(reason)

    # -- links, exit signals and monitors (Erlang semantics; a mailbox traps exits) --------

    def link(self, pid: "_erlnode.Pid") -> None:
        """Links to `pid` (`link/1`). When either side ends, the other gets an exit signal:
        here it arrives as the message `(Atom('EXIT'), pid, reason)`, as for a process
        trapping exits; a linked Erlang process that does not trap exits dies with the
        mailbox's close reason (unless it is `normal`). A dead `pid` or one on an unreachable
        node gives `('EXIT', pid, noproc)` / `noconnection` at once.

        Example::

            mbox.link(worker_pid)
            # ... the worker crashes:
            mbox.receive()                  # (Atom('EXIT'), worker_pid, reason)
        """
        self._native.link(pid)

    def unlink(self, pid: "_erlnode.Pid") -> None:
        """Removes the link to `pid` (`unlink/1`); no exit signal crosses it afterwards.

        Example::

            mbox.unlink(worker_pid)
        """
        self._native.unlink(pid)

    def exit(self, pid: "_erlnode.Pid", reason: Any) -> None:
        """Sends the exit signal `reason` to `pid` (`exit/2`): an Erlang process that does not
        trap exits dies (unless `reason` is `normal`; `kill` kills even one that traps).

        Example::

            mbox.exit(worker_pid, Atom("kill"))
        """
        self._native.exit(pid, reason)

    def monitor(self, target: Dest) -> "_erlnode.Reference":
        """Monitors a `Pid`, a local registered name or a `(name, node)` tuple (`monitor/2`).

        When the target ends (or does not exist: reason `noproc`; or its node is lost:
        `noconnection`) this mailbox gets `(Atom('DOWN'), ref, Atom('process'), target,
        reason)`, where `target` is the pid, or `(name, node)` for a monitor by name.

        Example::

            ref = mbox.monitor(("db", "erl@host"))
            # when db ends, or its node goes, the mailbox gets
            # (Atom('DOWN'), ref, Atom('process'), (Atom('db'), Atom('erl@host')), reason)
        """
        return self._native.monitor(target)

    def demonitor(self, ref: "_erlnode.Reference") -> None:
        """Stops the monitor `ref` (`demonitor/1`); a DOWN already received stays queued.

        Example::

            ref = mbox.monitor(server_pid)
            reply = node.call(server_pid, Atom("status"))
            mbox.demonitor(ref)
        """
        self._native.demonitor(ref)

    # -- process groups (OTP's pg; see docs/pg.md) -------------------------------------------

    def join_group(self, group: Any, *, scope: str = "pg") -> None:
        """Joins the `pg` group `group` of `scope` (`pg:join(Scope, Group, self())`).

        Every node of the cluster sees this mailbox in `pg:get_members(Scope, Group)` until
        it leaves, closes, or its node goes. A mailbox may join a group more than once; it
        is then listed as many times. Groups are Erlang terms: `Atom("workers")` is the
        group Erlang calls `workers` (a plain `str` is an Erlang string). Only a visible
        node (`Node(..., hidden=False)`) takes part in `pg`: a hidden one raises
        RuntimeError.

        Example::

            worker = node.mailbox()
            worker.join_group(erlnode.Atom("workers"))
            # Erlang: pg:get_members(workers) -> [<py@host.5.0>]
        """
        if self._native.closed:
            raise _erlnode.NodeClosedError("the mailbox is closed")
        self._node._pg_scope(scope).join(group, self.pid)

    def leave_group(self, group: Any, *, scope: str = "pg") -> bool:
        """Leaves `group` of `scope` once (`pg:leave/3`); False if the mailbox was not in it.

        Example::

            worker.leave_group(Atom("workers"))     # True: pg:get_members(workers) drops it
        """
        return self._node._pg_scope(scope).leave(group, self.pid)

    def __repr__(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        state = " closed" if self.closed else f" queued={self.qsize()}"
        return f"<Mailbox{name} {self.pid} on {self._node.name}{state}>"


class Node:
    """This Python program as a node of an Erlang cluster.

    Example::

        import erlnode
        with erlnode.Node("py", cookie="secret") as node:
            assert node.ping("erl@myhost")
            mbox = node.mailbox("echo")
            mbox.send(("shell_proc", "erl@myhost"), (mbox.pid, erlnode.Atom("hello")))
            print(mbox.receive(timeout=5.0))

    `name` is `"alive"` (a short name on this host, like `erl -sname`), `"alive@host.domain"`
    or `"alive@1.2.3.4"` (long names), or None: the first peer assigns a name (NAME_ME).
    `cookie=None` reads `~/.erlang.cookie` as erl does. Hidden by default, like Jinterface
    and C nodes. When no EPMD runs, the node serves EPMD itself.

    `ticktime` is the `net_ticktime` of the node's connections, in seconds (at least 1): a
    peer silent for that long counts as gone. `handshake_timeout` (seconds) bounds the
    handshake of each new connection. Their defaults are the Rust core's (`NodeConfig`).
    `listen` is the `"ip:port"` to accept connections on (port 0: any free port);
    `epmd_port` the EPMD to register with (None: `ERL_EPMD_PORT`, else 4369).

    `tls=TLSConfig(...)` makes every connection TLS distribution (`-proto_dist inet_tls`),
    mutual TLS by default; see `TLSConfig` and docs/security.md. `allowed_nodes` limits who
    may connect, as `net_kernel:allow/1`: full names, `"host"` (any node on it) or `"name@"`
    (on any host); empty or None: everyone with the cookie. `allow` adds to it.

    `max_message_size` (bytes, default 256 MiB) bounds each frame and each message
    reassembled from fragments that a peer sends: a peer that sends more is logged and
    disconnected.

    `rpc_workers` is the size of the thread pool that runs Python functions called from
    Erlang (see `expose`).

    `strings` picks how Erlang text arrives in every message the node's mailboxes receive
    (and how a Python `str` is sent), as `erlnode.decode(data, strings=...)` does:

    - `"str"` (the default): a list sent as STRING_EXT (what Erlang does with any list of
      small integers) is a `str`, a binary is `bytes`;
    - `"erlang"`: such a list is a `str` only when `io_lib:printable_list/1` calls it text,
      as `~p` prints it: `rpc(..., "lists", "seq", [1, 5])` gives `[1, 2, 3, 4, 5]`;
    - `"elixir"`: a binary that is valid UTF-8 (an Elixir string) is a `str`, a charlist a
      `list` of ints, and a `str` is sent as a UTF-8 binary.

    Every mode sends a decoded value back as the same Erlang term. The type table (README,
    docs/types.md) has the details.

    A visible node takes part in OTP's process groups (`Mailbox.join_group`,
    `group_members`; docs/pg.md): the `pg_scopes` start with the node (other scopes start
    when first used).
    """

    __slots__ = ("_native", "_server", "_global", "_pg", "__weakref__")

    def __init__(
        self,
        name: Optional[str] = None,
        cookie: Optional[str] = None,
        *,
        hidden: bool = True,
        ticktime: float = DEFAULT_TICKTIME,
        epmd_port: Optional[int] = None,
        listen: str = "0.0.0.0:0",
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        tls: Optional[TLSConfig] = None,
        allowed_nodes: Optional[Iterable[str]] = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        rpc_workers: int = 16,
        strings: Strings = "str",
        pg_scopes: Iterable[str] = ("pg",),
    ) -> None:
        _logging.start()
        _landing.start()
        self._native = NativeNode(
            name,
            cookie,
            hidden=hidden,
            ticktime=ticktime,
            epmd_port=epmd_port,
            listen=listen,
            handshake_timeout=handshake_timeout,
            tls=tls,
            allowed_nodes=None if allowed_nodes is None else _node_names(allowed_nodes),
            max_message_size=max_message_size,
            strings=strings,
        )
        self._server = _rpc.RpcServer(self._native, rpc_workers)
        try:
            # Installed now, not on the first `expose`: a call into an unexposed module must
            # already fail with `undef`, as on BEAM. A node named by its peer (NAME_ME) gets
            # it once it has a name (after `ping`).
            self._server.install()
        except BaseException:
            self._native.close()
            raise
        # A visible node is a member for OTP's `global`: answer its protocol (see _global).
        # It also takes part in `pg`: its scopes start before any peer can look for them.
        self._global: Optional[_global.GlobalServer] = None
        self._pg: Optional[_pg.Scopes] = None
        if not hidden:
            try:
                from . import _global, _pg

                self._global = _global.GlobalServer(self._native)
                self._pg = _pg.Scopes(self._native)
                for scope in [pg_scopes] if isinstance(pg_scopes, str) else pg_scopes:
                    self._pg.get(scope)
            except BaseException:
                self.close()
                raise
        with _live_lock:
            _live_nodes.add(self)

    @property
    def name(self) -> str:
        """The full node name, `alive@host`.

        Example::

            erlnode.Node("py", cookie="secret").name    # 'py@host' (this machine's short name)
        """
        return self._native.name

    @property
    def cookie(self) -> str:
        """The cookie the node shows its peers.

        Example::

            erlnode.Node("py").cookie       # what ~/.erlang.cookie holds, as erl reads it
        """
        return self._native.cookie

    @property
    def strings(self) -> Strings:
        """How the node's mailboxes decode Erlang text and send a `str` (see `Node`).

        Example::

            erlnode.Node("py", cookie="secret", strings="elixir").strings   # 'elixir'
        """
        return self._native.strings

    @property
    def tls(self) -> bool:
        """Whether the node's connections run over TLS (`tls=` was given).

        Example::

            erlnode.Node("py", tls=erlnode.TLSConfig.from_optfile("dist.conf")).tls   # True
        """
        return self._native.tls

    @property
    def allowed_nodes(self) -> list[str]:
        """Who may connect (see `allow`); empty: every node with the cookie.

        Example::

            node = erlnode.Node("py", cookie="secret", allowed_nodes=["app@db1"])
            node.allowed_nodes              # ['app@db1']
        """
        return self._native.allowed_nodes

    def allow(self, nodes: Union[str, Iterable[str]]) -> None:
        """Adds to the nodes allowed to connect, as `net_kernel:allow/1`: each entry is a
        full node name, a host (`"host"`: any node on it) or a name (`"name@"`: on any host).
        Entries are never removed; while the list is empty, every node may connect.

        Example::

            node.allow(["app@db1.example.com", "worker@"])
        """
        self._native.allow(_node_names(nodes))

    @property
    def creation(self) -> int:
        """The node's creation (incarnation number, from EPMD, or from the peer that named the
        node): it tells this run's pids from those of an earlier node of the same name.

        Example::

            node.creation                   # e.g. 1718893742: mbox.pid.creation is the same
        """
        return self._native.creation

    @property
    def port(self) -> int:
        """The TCP port the node listens on (0 for a node named by its peer).

        Example::

            node.port                       # 40613, as `epmd -names` lists it for the node
        """
        return self._native.port

    @property
    def closed(self) -> bool:
        """True once `close` has run.

        Example::

            node.close()
            node.closed                     # True
        """
        return self._native.closed

    def mailbox(
        self, name: Optional[str] = None, *, callback: Optional[Callable[[Any], Any]] = None
    ) -> Mailbox:
        """A new mailbox, registered under `name` if given.

        With `callback`, every message is passed to `callback(msg)` on the node's dispatcher
        thread, one at a time, in arrival order; `receive` is then not used. A callback that
        raises is logged (logger `erlnode`) and the next message is delivered.

        Example::

            inbox = node.mailbox("inbox")   # {inbox, 'py@host'} ! Msg reaches it
            node.mailbox("log", callback=lambda msg: print("got", msg))
            # Erlang: {log, 'py@host'} ! hello     prints: got hello
        """
        mbox = Mailbox(self._native.mailbox(name, callback), self)
        self._server.install()  # no-op once installed; a NAME_ME node may just have got its name
        return mbox

    def send(self, dest: Dest, message: Any) -> None:
        """Sends like `Mailbox.send`, from an anonymous pid of this node.

        Example::

            node.send(("logger", "erl@host"), (Atom("info"), "started"))
        """
        self._native.send(dest, message)

    def ping(self, node: str, timeout: float = 5.0) -> bool:
        """`net_adm:ping`: True (`pong`) when `node` is reachable and accepts our cookie.

        Example::

            if not node.ping("erl@host"):
                sys.exit("erl@host is down, or has another cookie")
        """
        pong = self._native.ping(node, timeout)
        if pong:
            self._server.install()  # a NAME_ME node has its name now
        return pong

    def disconnect(self, node: str) -> bool:
        """Closes the connection to `node` (`erlang:disconnect_node/1`); False if there was none.

        Links across it exit with `noconnection` and monitors fire, as when the peer goes away.

        Example::

            node.disconnect("erl@host")     # True; Erlang's monitor_node gets nodedown
        """
        return self._native.disconnect(node)

    def connected_nodes(self) -> list[str]:
        """Names of the nodes this node has a live connection to.

        Example::

            node.ping("erl@host")
            node.connected_nodes()          # ['erl@host']
        """
        return self._native.connected_nodes()

    def make_ref(self) -> "_erlnode.Reference":
        """A new unique reference (like `make_ref/0`).

        Example::

            ref = node.make_ref()
            mbox.send(server_pid, (Atom("query"), mbox.pid, ref, "users"))
            # the answer carries ref: {Ref, Result}
        """
        return self._native.make_ref()

    def stats(self) -> NodeStats:
        """How the node stands: its open mailboxes, and per live connection (keyed by the
        peer's name) the bytes and messages in and out, the send queue, the seconds since
        data last came in and went out, and when it came up. See `NodeStats` and
        `ConnectionStats` for the keys; a plain dict, ready for `json.dumps` or a metrics
        exporter.

        Example::

            for peer, conn in node.stats()["connections"].items():
                print(peer, conn["messages_in"], conn["send_queue"], conn["last_in"])

        The counts are kept by the network threads as they go and read without stopping
        them: one may be a read behind.
        """
        return cast(NodeStats, self._native.stats())

    # -- node monitoring ---------------------------------------------------------------------

    def monitor_node(self, node: str, watcher: NodeWatcher, flag: bool = True) -> Mailbox:
        """Watches the connection to `node`, like `erlang:monitor_node(Node, true)`.

        `watcher` gets `nodedown` once, when the connection goes (at once if `node` cannot
        be reached; the call connects on demand): a `Mailbox` receives the message
        `(Atom('nodedown'), Atom(node))`; a callable is called as `watcher('nodedown', node)`
        on the node's dispatcher thread. Returns the mailbox that receives it (for a callable,
        an internal one: close it to cancel). `flag=False` cancels a mailbox's monitor.

        Example::

            node.monitor_node("erl@host", lambda event, name: print(event, name))
            # when the connection goes: prints "nodedown erl@host"
        """
        if isinstance(watcher, Mailbox):
            self._native.monitor_node(watcher._native, node, flag)
            return watcher
        if not flag:
            raise ValueError("to cancel a callback's monitor, close the mailbox it returned")
        mbox = self._watcher_mailbox(watcher, once=True)
        self._native.monitor_node(mbox._native, node, True)
        return mbox

    def monitor_nodes(self, watcher: NodeWatcher, flag: bool = True) -> Mailbox:
        """Every connection that comes up or goes, like `net_kernel:monitor_nodes(true)`.

        A `Mailbox` receives `(Atom('nodeup'), Atom(name))` and `(Atom('nodedown'),
        Atom(name))`; a callable is called as `watcher(event, name)`. Returns the mailbox
        that receives them (close it, or pass `flag=False` with the mailbox, to stop).

        Example::

            watcher = node.monitor_nodes(lambda event, name: print(event, name))
            # nodeup erl@host ... nodedown erl@host
            watcher.close()                 # stop
        """
        if isinstance(watcher, Mailbox):
            self._native.monitor_nodes(watcher._native, flag)
            return watcher
        if not flag:
            raise ValueError("to cancel a callback's subscription, close the mailbox it returned")
        mbox = self._watcher_mailbox(watcher, once=False)
        self._native.monitor_nodes(mbox._native, True)
        return mbox

    def _watcher_mailbox(self, watcher: Callable[[Atom, str], Any], once: bool) -> Mailbox:
        holder: list[Mailbox] = []

        def deliver(message: Any) -> None:
            if is_tuple(message, 2) and isinstance(message[0], Atom):
                watcher(message[0], str(message[1]))
                if once and holder:
                    holder[0].close()

        mbox = self.mailbox(callback=deliver)
        holder.append(mbox)
        return mbox

    # -- process groups (OTP's pg; see docs/pg.md) -------------------------------------------

    def _pg_scope(self, scope: str) -> _pg.Scope:
        if self._pg is None:
            from ._pg import HIDDEN_ERROR

            raise RuntimeError(HIDDEN_ERROR)
        if self._native.closed:
            raise _erlnode.NodeClosedError("the node is closed")
        return self._pg.get(scope)

    def group_members(self, group: Any, *, scope: str = "pg") -> list["_erlnode.Pid"]:
        """Every member of `group` in `scope` on every node that this node's scope knows
        (`pg:get_members(Scope, Group)`): this node's mailboxes that joined, and the
        processes of the other nodes' `pg` scopes. Newest first; [] for an unknown group.
        A hidden node raises RuntimeError (pg sees only visible nodes).

        Example::

            node = erlnode.Node("py", cookie="secret", hidden=False)
            node.ping("erl@host")
            node.group_members(Atom("workers"))     # [Pid('erl@host', 91, 0, 1718893742), ...]
        """
        return self._pg_scope(scope).members(group)

    def local_group_members(self, group: Any, *, scope: str = "pg") -> list["_erlnode.Pid"]:
        """The members of `group` that are mailboxes of this node (`pg:get_local_members`).

        Example::

            mbox.join_group(Atom("workers"))
            node.local_group_members(Atom("workers")) == [mbox.pid]     # True
        """
        return self._pg_scope(scope).local_members(group)

    def which_groups(self, *, scope: str = "pg") -> list[Any]:
        """The groups of `scope` that have members anywhere (`pg:which_groups(Scope)`).

        Example::

            node.which_groups()             # [Atom('workers'), Atom('loggers')]
        """
        return self._pg_scope(scope).which_groups()

    def monitor_group(
        self, group: Any, watcher: GroupWatcher, *, scope: str = "pg"
    ) -> "tuple[_erlnode.Reference, list[_erlnode.Pid]]":
        """Watches who joins and leaves `group`, like `pg:monitor(Scope, Group)`: returns
        `(ref, members now)`; after that, every change reaches `watcher`.

        A `Mailbox` receives `(ref, Atom('join'), group, pids)` and `(ref, Atom('leave'),
        group, pids)`; a callable is called as `watcher(event, group, pids)` (event
        `'join'` or `'leave'`) on the node's dispatcher thread. `demonitor_group(ref)` stops
        it; so does closing the watching mailbox.

        Example::

            ref, members = node.monitor_group(Atom("workers"), print)
            # a worker joins on an Erlang node: print('join', Atom('workers'), [<erl@h.91.0>])
        """
        target = self._pg_scope(scope)
        if isinstance(watcher, Mailbox):
            return target.monitor(group, watcher.pid)
        if not callable(watcher):
            raise TypeError(f"a group watcher is a Mailbox or a callable, not {watcher!r}")
        deliver = watcher

        def on_change(message: Any) -> None:
            if is_tuple(message, 4) and isinstance(message[1], Atom):
                deliver(message[1], message[2], list(message[3]))

        owned = self._native.mailbox(None, on_change)
        try:
            return target.monitor(group, owned.pid, owned)
        except BaseException:
            owned.close()
            raise

    def demonitor_group(self, ref: "_erlnode.Reference") -> bool:
        """Stops the `monitor_group` subscription `ref` (`pg:demonitor/2`); False if it is
        not one (any more). Notifications already delivered to a mailbox stay queued.

        Example::

            ref, members = node.monitor_group(Atom("workers"), print)
            node.demonitor_group(ref)       # True
        """
        if self._pg is None:
            return False
        return any(scope.demonitor(ref) for scope in self._pg.all())

    # -- calling Erlang ----------------------------------------------------------------------

    def rpc(
        self,
        node: str,
        module: str,
        function: str,
        args: Iterable[Any] = (),
        timeout: Optional[float] = 5.0,
    ) -> Any:
        """`rpc:call(Node, Module, Function, Args)`: runs it on `node`, returns its value.

        Goes through `node`'s `rex` server, so it works with any Erlang node (and another
        erlnode node). Raises `RemoteError` (the function raised an error; `.reason`,
        `.stacktrace`), `RemoteExit` (it exited), `BadRpc` (`{badrpc, Reason}` otherwise,
        e.g. `.reason == 'nodedown'`) and `TimeoutError` (no answer in `timeout` seconds;
        None waits forever). A `throw` returns the thrown value, as `rpc:call` does. Output
        of the remote call (`io:format`) is written to `sys.stdout`.

        Example::

            node.rpc("erl@host", "lists", "sum", [[1, 2, 3]])                       # 6
            node.rpc("erl@host", "erlang", "system_info", [Atom("otp_release")])    # '27'
        """
        return _rpc.rpc_call(self._native, node, module, function, list(args), timeout)

    def call(self, dest: Dest, request: Any, timeout: Optional[float] = 5.0) -> Any:
        """`gen_server:call(Dest, Request)`: sends `('$gen_call', (pid, ref), request)` and
        returns the reply. `dest` is a `Pid`, a local name or `(name, node)`.

        Raises `RemoteExit` with the server's exit reason when it dies before replying or
        does not exist (`.reason == 'noproc'`; `'noconnection'` when its node is lost), and
        `TimeoutError` after `timeout` seconds (None: wait forever).

        Example::

            node.call(("config", "erl@host"), (Atom("get"), Atom("port")))
            # what gen_server:call({config, 'erl@host'}, {get, port}) returns in Erlang
        """
        return _rpc.gen_call(self._native, dest, request, timeout)

    def cast(self, dest: Dest, request: Any) -> None:
        """`gen_server:cast(Dest, Request)`: sends `('$gen_cast', request)`; never fails.

        Example::

            node.cast(("config", "erl@host"), (Atom("set"), Atom("port"), 8080))
        """
        self._native.send(dest, (Atom("$gen_cast"), request))

    # -- being called from Erlang -----------------------------------------------------------

    def expose(self, module: str, functions: _rpc.Functions) -> None:
        """Makes Python functions callable from Erlang as `module:name(Args...)`.

        `functions` maps names to callables, or is a Python module (its public callables
        defined in it). Erlang reaches them with `rpc:call`, `erpc:call`, `rpc:cast`,
        `erpc:cast` and `rpc:block_call`. Calls run on the node's thread pool (`rpc_workers`
        threads): a slow function holds up only its own caller. A missing module or
        function, or a call with an arity the function does not accept, is `undef` as on
        BEAM. A Python exception reaches Erlang as the error `{python, TypeName, Message}`
        (TypeName an atom, Message a binary) with the Python stack; raise `ErlangError`,
        `ErlangExit` or `ErlangThrow` to raise an exact Erlang exception. Exposing more
        functions under the same module adds to it.

        Example::

            node.expose("pymath", {"add": lambda a, b: a + b})
            # Erlang: rpc:call('py@host', pymath, add, [1, 2]) -> 3
        """
        self._server.expose(module, functions)

    def expose_function(self, module: str, name: Optional[str] = None) -> Callable[[F], F]:
        """Decorator form of `expose`: `@node.expose_function("pymath")` exposes the function
        as `pymath:<its name>` (or `name`), and returns it unchanged.

        Example::

            @node.expose_function("pymath")
            def mul(a, b):
                return a * b
            # Erlang: rpc:call('py@host', pymath, mul, [6, 7]) -> 42
        """

        def decorate(fn: F) -> F:
            self._server.expose_one(module, name or fn.__name__, fn)
            return fn

        return decorate

    def unexpose(self, module: str, name: Optional[str] = None) -> None:
        """Withdraws one function, or the whole module when `name` is None.

        Example::

            node.unexpose("pymath", "mul")  # pymath:mul/2 is undef in Erlang again
            node.unexpose("pymath")         # and the rest of pymath
        """
        self._server.unexpose(module, name)

    def exposed(self) -> dict[str, list[str]]:
        """The exposed modules and their function names.

        Example::

            node.exposed()                  # {'pymath': ['add', 'mul']}
        """
        return self._server.exposed()

    def close(self) -> None:
        """Closes every mailbox (links and monitors fire), every connection, and unregisters.

        Returns once everything `send` accepted is written to its peer, so a program may exit
        right after; a peer that takes nothing for `ticktime` seconds is given up on (logged).

        Example::

            node = erlnode.Node("py", cookie="secret")
            try:
                serve(node)
            finally:
                node.close()                # or: with erlnode.Node(...) as node:
        """
        if self._global is not None:
            self._global.close()
        if self._pg is not None:
            self._pg.close()
        self._native.close()
        self._server.shutdown()

    def __enter__(self) -> "Node":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        # Never the cookie.
        if self.closed:
            return f"<Node {self.name} closed>"
        extras = ""
        if self.tls:
            extras += " tls"
        if self.strings != "str":
            extras += f" strings={self.strings!r}"
        peers = self.connected_nodes()
        shown = ", ".join(peers[:3]) + (f", +{len(peers) - 3} more" if len(peers) > 3 else "")
        return f"<Node {self.name}{extras} peers=[{shown}]>"


def _node_names(nodes: Union[str, Iterable[str]]) -> list[str]:
    """An allow list from one name or many (a lone `str` is one entry, not its letters)."""
    if isinstance(nodes, str):
        return [nodes]
    names = list(nodes)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"a node name is a str, not {type(name).__name__}")
    return names


def _close_all(nodes: Iterable[Node]) -> None:
    for node in list(nodes):
        try:
            node.close()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


atexit.register(lambda: _close_all(_live_nodes))
