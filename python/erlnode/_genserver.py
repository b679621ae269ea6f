"""`GenServer`: a Python process that Erlang (and Python) can `gen_server:call` and `cast`."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Optional, TypeVar

from ._erlnode import NodeClosedError, Pid
from ._match import GenCall, GenCast, gen_message, is_atom, is_tuple
from ._rpc import python_error
from ._terms import Atom

if TYPE_CHECKING:
    from ._node import Mailbox, Node

log = logging.getLogger("erlnode.genserver")

S = TypeVar("S", bound="GenServer")

#: `From` of a call: `(caller_pid, tag)`; the tag may be a reference or `[alias | Ref]`.
From = tuple[Pid, Any]


class _NoReply:
    def __repr__(self) -> str:
        return "GenServer.NOREPLY"


class GenServer:
    """A gen_server written in Python, running on its own thread.

    Example::

        class Counter(erlnode.GenServer):
            def __init__(self) -> None:
                super().__init__()
                self.count = 0

            def handle_call(self, request, from_):
                if request == Atom("next"):
                    self.count += 1
                    return self.count
                raise ValueError(f"unknown request {request!r}")

            def handle_cast(self, request):
                self.count = 0

        server = Counter.start(node, name="counter")
        # Erlang: gen_server:call({counter, 'py@host'}, next) -> 1

    Messages are handled one at a time, in arrival order, on the server's thread:
    `handle_call(request, from_)` for `gen_server:call` (its return value is the reply, unless
    it returns `GenServer.NOREPLY`, in which case someone calls `self.reply(from_, value)`
    later, from any thread), `handle_cast(request)` for `gen_server:cast`, and
    `handle_info(message)` for anything else, including `('EXIT', Pid, Reason)` from links
    (the mailbox traps exits). An exception in a handler crashes the server like an OTP
    gen_server: `terminate(reason)` runs, the mailbox closes with the reason
    `{python, TypeName, Message}`, the pending caller and every linked or monitoring
    process see it.
    """

    NOREPLY: Any = _NoReply()

    _mailbox: Optional[Mailbox] = None
    _thread: Optional[threading.Thread] = None

    # -- callbacks (override) --------------------------------------------------------------

    def init(self) -> None:
        """Runs in `start`, once the mailbox exists (`self.pid` is valid); raise to refuse.

        Example::

            def init(self):
                self.node.monitor_nodes(self.mailbox)   # nodeup/nodedown reach handle_info
        """

    def handle_call(self, request: Any, from_: From) -> Any:
        """A `gen_server:call`: returns the reply, or `GenServer.NOREPLY` to answer later with
        `self.reply(from_, value)`. The default raises NotImplementedError, which crashes the
        server as any exception in a handler does.

        Example::

            def handle_call(self, request, from_):
                if request == Atom("count"):
                    return self.count                   # the reply
                self.pool.submit(lambda: self.reply(from_, self.lookup(request)))
                return erlnode.GenServer.NOREPLY        # answered later, from the pool's thread
        """
        raise NotImplementedError(f"{type(self).__name__} handles no calls ({request!r})")

    def handle_cast(self, request: Any) -> None:
        """A `gen_server:cast`. The default logs it as unhandled.

        Example::

            def handle_cast(self, request):
                if request == Atom("reset"):
                    self.count = 0
            # Erlang: gen_server:cast({counter, 'py@host'}, reset)
        """
        log.warning("%s: unhandled cast %r", type(self).__name__, request)

    def handle_info(self, message: Any) -> None:
        """Any other message (exit signals from links arrive here). The default ignores it.

        Example::

            def handle_info(self, message):
                if isinstance(message, tuple) and message[0] == Atom("EXIT"):
                    self.workers.discard(message[1])    # a linked worker ended
        """
        log.debug("%s: unhandled message %r", type(self).__name__, message)

    def terminate(self, reason: Any) -> None:
        """Runs on the server's thread before the mailbox closes with `reason`.

        Example::

            def terminate(self, reason):
                self.db.close()
        """

    # -- running -------------------------------------------------------------------------

    @classmethod
    def start(cls: type[S], node: Node, *args: Any, name: Optional[str] = None, **kwargs: Any) -> S:
        """Creates the server (`cls(*args, **kwargs)`), registers it as `name`, starts it.

        Example::

            cache = Cache.start(node, max_size=1000, name="cache")    # Cache(max_size=1000)
            # Erlang: gen_server:call({cache, 'py@host'}, {get, Key})
        """
        server = cls(*args, **kwargs)
        server._mailbox = node.mailbox(name)
        try:
            server.init()
        except BaseException:
            server._mailbox.close()
            raise
        label = name or str(server._mailbox.pid)
        server._stop_ref = node.make_ref()
        server._thread = threading.Thread(
            target=server._loop, name=f"erlnode-genserver-{label}", daemon=True
        )
        server._thread.start()
        return server

    @property
    def mailbox(self) -> Mailbox:
        """The server's mailbox (RuntimeError before `start`).

        Example::

            server.mailbox.qsize()          # requests waiting to be handled
        """
        if self._mailbox is None:
            raise RuntimeError("the server is not started: use Class.start(node, ...)")
        return self._mailbox

    @property
    def pid(self) -> Pid:
        """The server's pid.

        Example::

            mbox.send(erl_pid, (Atom("counter"), server.pid))
            # Erlang: receive {counter, Pid} -> gen_server:call(Pid, next) end
        """
        return self.mailbox.pid

    @property
    def name(self) -> Optional[str]:
        """The name the server is registered under, if any.

        Example::

            Counter.start(node, name="counter").name    # 'counter'
        """
        return self.mailbox.name

    @property
    def node(self) -> Node:
        """The node the server runs on.

        Example::

            server.node.name                # 'py@host'
        """
        return self.mailbox.node

    @property
    def running(self) -> bool:
        """True while the server's thread runs (from `start` until it stops or crashes).

        Example::

            server.stop()
            server.running                  # False
        """
        return self._thread is not None and self._thread.is_alive()

    def reply(self, from_: From, value: Any) -> None:
        """Answers a call whose handler returned `NOREPLY` (`gen_server:reply/2`).

        Example::

            def handle_call(self, request, from_):
                worker = threading.Thread(target=lambda: self.reply(from_, compute(request)))
                worker.start()
                return erlnode.GenServer.NOREPLY
        """
        caller, tag = from_
        self.mailbox.send(caller, (tag, value))

    def call(self, request: Any, timeout: Optional[float] = 5.0) -> Any:
        """`gen_server:call` on this server from Python (not from its own handlers).

        Example::

            server = Counter.start(node, name="counter")
            server.call(Atom("next"))       # 1, like gen_server:call({counter, 'py@host'}, next)
        """
        return self.node.call(self.pid, request, timeout)

    def cast(self, request: Any) -> None:
        """`gen_server:cast` to this server from Python.

        Example::

            server.cast(Atom("reset"))
        """
        self.node.cast(self.pid, request)

    def stop(self, reason: Any = None, timeout: Optional[float] = 5.0) -> None:
        """Stops the server after the messages already queued: `terminate(reason)` runs, then
        the mailbox closes with `reason` (`normal`). Waits for the thread unless called from it.

        Example::

            server.stop(Atom("shutdown"))
            # terminate(shutdown) runs; linked Erlang processes get the exit signal shutdown
        """
        reason = Atom("normal") if reason is None else reason
        mbox = self.mailbox
        if not mbox.closed:
            mbox.send(mbox.pid, (Atom("$erlnode_stop"), self._stop_ref, reason))
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- the loop ----------------------------------------------------------------------------

    _stop_ref: Any = None

    def _loop(self) -> None:
        mbox = self.mailbox
        reason: Any = Atom("normal")
        while True:
            try:
                message = mbox.receive()
            except NodeClosedError:
                return  # closed from outside (e.g. the node closed): nothing left to run
            if (
                is_tuple(message, 3)
                and is_atom(message[0], "$erlnode_stop")
                and message[1] == self._stop_ref
            ):
                reason = message[2]
                break
            try:
                self._dispatch(message)
            except Exception as e:  # noqa: BLE001 - a crash ends the server, as in OTP
                log.exception("%s crashed on %r", type(self).__name__, message)
                reason = python_error(e)
                break
        try:
            self.terminate(reason)
        except Exception:  # noqa: BLE001 - the server stops anyway
            log.exception("%s.terminate failed", type(self).__name__)
        mbox.close(reason)

    def _dispatch(self, message: Any) -> None:
        gen = gen_message(message)
        if isinstance(gen, GenCall):
            from_: From = (gen.caller, gen.tag)
            result = self.handle_call(gen.request, from_)
            if result is not GenServer.NOREPLY:
                self.reply(from_, result)
        elif isinstance(gen, GenCast):
            self.handle_cast(gen.request)
        else:
            self.handle_info(message)

    def __repr__(self) -> str:
        if self._mailbox is None:
            return f"<{type(self).__name__} not started>"
        return f"<{type(self).__name__} {self._mailbox!r}>"
