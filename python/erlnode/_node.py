"""`Node` and `Mailbox`: the typed Python face of the Rust node."""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import weakref
from typing import Any, AsyncIterator, Callable, Iterable, Optional, Union

from . import _erlnode
from ._erlnode import NativeMailbox, NativeNode

#: Where a message can go: a `Pid`, a registered name on this node, or `(name, node)`.
Dest = Union["_erlnode.Pid", str, "tuple[str, str]"]

_EMPTY = object()
_live_nodes: "weakref.WeakSet[Node]" = weakref.WeakSet()
_live_lock = threading.Lock()


def _drain_and_wake(fd: int, woken: "asyncio.Future[None]") -> None:
    try:
        os.read(fd, 4096)
    except BlockingIOError:
        pass
    if not woken.done():
        woken.set_result(None)


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

    __slots__ = ("_native", "_node", "__weakref__")

    def __init__(self, native: NativeMailbox, node: "Node") -> None:
        self._native = native
        self._node = node

    @property
    def pid(self) -> "_erlnode.Pid":
        """This mailbox's pid (send it to Erlang so that it can answer)."""
        return self._native.pid

    @property
    def name(self) -> Optional[str]:
        """The registered name, if any."""
        return self._native.name

    @property
    def node(self) -> "Node":
        return self._node

    @property
    def closed(self) -> bool:
        return self._native.closed

    def register(self, name: str) -> None:
        """Registers this mailbox under `name` (like `register/2`)."""
        self._native.register(name)

    def send(self, dest: Dest, message: Any) -> None:
        """Sends `message` to a `Pid`, a local registered name or a `(name, node)` tuple.

        Like Erlang's `!`, it does not wait and does not fail for an unknown destination; a
        node not yet connected is connected on demand (messages wait for it in order).
        """
        self._native.send(dest, message)

    def send_many(self, dest: Dest, messages: Iterable[Any]) -> None:
        """Sends each of `messages` to `dest`, in order; for a peer, as one write.

        The batch form of `send` for message-heavy bridges: one call, one lock and one
        wake-up of the network thread for the whole batch.
        """
        self._native.send_many(dest, messages)

    def receive(self, timeout: Optional[float] = None) -> Any:
        """The next message, waiting up to `timeout` seconds (None: forever).

        Raises `TimeoutError` when none arrives in time, `NodeClosedError` once closed.
        """
        return self._native.receive(timeout)

    def receive_many(self, max: int = 1024, timeout: Optional[float] = None) -> list[Any]:
        """Every waiting message (up to `max`), waiting like `receive` for the first."""
        return self._native.receive_many(max, timeout)

    async def receive_async(self, timeout: Optional[float] = None) -> Any:
        """`receive` for asyncio: awaits the next message without blocking the loop.

        The network thread makes a file descriptor readable when messages arrive; the loop
        watches it (`add_reader`), so waking costs no thread hop.
        """
        message = self._native.try_receive(_EMPTY)
        if message is not _EMPTY:
            return message
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        fd = self._native.wake_fd()
        while True:
            woken: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _drain_and_wake, fd, woken)
            try:
                # A message may have come between the first look and add_reader.
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
            finally:
                loop.remove_reader(fd)
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
        """Closes the mailbox; linked and monitoring processes see `reason` (`normal`)."""
        self._native.close(reason)

    def __repr__(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        return f"<Mailbox{name} {self.pid}>"


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
    """

    __slots__ = ("_native", "__weakref__")

    def __init__(
        self,
        name: Optional[str] = None,
        cookie: Optional[str] = None,
        *,
        hidden: bool = True,
        ticktime: float = 60.0,
        epmd_port: Optional[int] = None,
        listen: str = "0.0.0.0:0",
        handshake_timeout: float = 7.0,
    ) -> None:
        self._native = NativeNode(
            name,
            cookie,
            hidden=hidden,
            ticktime=ticktime,
            epmd_port=epmd_port,
            listen=listen,
            handshake_timeout=handshake_timeout,
        )
        with _live_lock:
            _live_nodes.add(self)

    @property
    def name(self) -> str:
        """The full node name, `alive@host`."""
        return self._native.name

    @property
    def cookie(self) -> str:
        return self._native.cookie

    @property
    def creation(self) -> int:
        return self._native.creation

    @property
    def port(self) -> int:
        """The TCP port the node listens on (0 for a node named by its peer)."""
        return self._native.port

    @property
    def closed(self) -> bool:
        return self._native.closed

    def mailbox(
        self, name: Optional[str] = None, *, callback: Optional[Callable[[Any], Any]] = None
    ) -> Mailbox:
        """A new mailbox, registered under `name` if given.

        With `callback`, every message is passed to `callback(msg)` on the node's dispatcher
        thread, one at a time, in arrival order; `receive` is then not used. A callback that
        raises is logged (logger `erlnode`) and the next message is delivered.
        """
        return Mailbox(self._native.mailbox(name, callback), self)

    def send(self, dest: Dest, message: Any) -> None:
        """Sends like `Mailbox.send`, from an anonymous pid of this node."""
        self._native.send(dest, message)

    def ping(self, node: str, timeout: float = 5.0) -> bool:
        """`net_adm:ping`: True (`pong`) when `node` is reachable and accepts our cookie."""
        return self._native.ping(node, timeout)

    def connected_nodes(self) -> list[str]:
        """Names of the nodes this node has a live connection to."""
        return self._native.connected_nodes()

    def make_ref(self) -> "_erlnode.Reference":
        """A new unique reference (like `make_ref/0`)."""
        return self._native.make_ref()

    def close(self) -> None:
        """Closes every mailbox (links and monitors fire), every connection, and unregisters."""
        self._native.close()

    def __enter__(self) -> "Node":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<Node {self.name}{state}>"


def _close_all(nodes: Iterable[Node]) -> None:
    for node in list(nodes):
        try:
            node.close()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


atexit.register(lambda: _close_all(_live_nodes))
