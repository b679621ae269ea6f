"""py_interface's event handler: one loop that runs timers, file descriptor callbacks and
mailbox callbacks, all on the thread that calls :meth:`_EventHandler.Loop`.

erlnode receives messages on its own threads; a compat mailbox only hands each message over to
this loop (:meth:`_EventHandler.Post`), so user callbacks still run one at a time on the loop's
thread as they did in py_interface. The hand-over wakes the loop through a socket pair, which
lets the loop wait for messages, timers and file descriptors with a single ``select``.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import select
import socket
import threading
import time
from typing import Any, Callable, Protocol, Union


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


Connection = Union[int, _HasFileno]


class EVCallback:
    """A callback with its arguments bound; whatever the invoker passes is ignored."""

    def __init__(
        self, callback: Callable[..., Any], optArgs: tuple[Any, ...], namedArgs: dict[str, Any]
    ) -> None:
        self.callback = callback
        self.optArgs = optArgs
        self.namedArgs = namedArgs

    def __call__(self, *extraArgs: Any) -> Any:
        return self.callback(*self.optArgs, **self.namedArgs)

    def __repr__(self) -> str:
        return f"<EVCallback to {self.callback!r}>"


_timer_ids = itertools.count()


def GetNewTimerId() -> int:
    """A new timer id, unique in this process."""
    return next(_timer_ids)


class _EventHandler:
    READ = 1
    WRITE = 2
    EXCEPT = 4

    def __init__(self) -> None:
        # Per connection a stack of callbacks; only the top one is called (py_interface's rule).
        self.readEvents: dict[Connection, list[EVCallback]] = {}
        self.writeEvents: dict[Connection, list[EVCallback]] = {}
        self.exceptEvents: dict[Connection, list[EVCallback]] = {}
        # (due time, id, callback), earliest first; ids break ties in the order timers were added.
        self._timers: list[tuple[float, int, EVCallback]] = []
        self._cancelledTimers: set[int] = set()
        # Work handed over from other threads (arrived messages, ping results).
        self._posted: collections.deque[Callable[[], None]] = collections.deque()
        self._wakeReader, self._wakeWriter = socket.socketpair()
        self._wakeReader.setblocking(False)
        self._wakeWriter.setblocking(False)
        self.continueLooping = False
        self._loopThread: threading.Thread | None = None

    # -- file descriptors --------------------------------------------------------------------

    def PushReadEvent(
        self,
        connection: Connection,
        cbfunction: Callable[..., Any],
        *optArgs: Any,
        **namedArgs: Any,
    ) -> None:
        """Calls ``cbfunction(*optArgs, **namedArgs)`` whenever CONNECTION (a file descriptor or
        an object with ``fileno()``) is readable, until popped. Callbacks stack per connection."""
        self._push(self.readEvents, connection, EVCallback(cbfunction, optArgs, namedArgs))

    def PopReadEvent(self, connection: Connection) -> None:
        self._pop(self.readEvents, connection)

    def PushWriteEvent(
        self,
        connection: Connection,
        cbfunction: Callable[..., Any],
        *optArgs: Any,
        **namedArgs: Any,
    ) -> None:
        self._push(self.writeEvents, connection, EVCallback(cbfunction, optArgs, namedArgs))

    def PopWriteEvent(self, connection: Connection) -> None:
        self._pop(self.writeEvents, connection)

    def PushExceptEvent(
        self,
        connection: Connection,
        cbfunction: Callable[..., Any],
        *optArgs: Any,
        **namedArgs: Any,
    ) -> None:
        self._push(self.exceptEvents, connection, EVCallback(cbfunction, optArgs, namedArgs))

    def PopExceptEvent(self, connection: Connection) -> None:
        self._pop(self.exceptEvents, connection)

    @staticmethod
    def _push(table: dict[Connection, list[EVCallback]], conn: Connection, cb: EVCallback) -> None:
        table.setdefault(conn, []).insert(0, cb)

    @staticmethod
    def _pop(table: dict[Connection, list[EVCallback]], conn: Connection) -> None:
        handlers = table[conn]
        del handlers[0]
        if not handlers:
            del table[conn]

    # -- timers ------------------------------------------------------------------------------

    def AddTimerEvent(
        self, timeLeft: float, cbfunction: Callable[..., Any], *optArgs: Any, **namedArgs: Any
    ) -> int:
        """Calls ``cbfunction(*optArgs, **namedArgs)`` once, TIMELEFT seconds from now.
        Returns an id for :meth:`DelTimerEvent`."""
        timerId = GetNewTimerId()
        entry = (time.monotonic() + timeLeft, timerId, EVCallback(cbfunction, optArgs, namedArgs))
        if self._loopThread is None or self._loopThread is threading.current_thread():
            heapq.heappush(self._timers, entry)
        else:
            # The timer heap belongs to the loop's thread; Post also wakes the loop, whose
            # current wait may end later than this timer is due.
            self.Post(lambda: heapq.heappush(self._timers, entry))
        return timerId

    def DelTimerEvent(self, id: int) -> None:
        if any(timerId == id for _, timerId, _ in self._timers):
            self._cancelledTimers.add(id)

    # -- hand-over from other threads --------------------------------------------------------

    def Post(self, work: Callable[[], None]) -> None:
        """Runs WORK on the loop's thread, in the order posted. Callable from any thread."""
        self._posted.append(work)
        self._wake()

    def _wake(self) -> None:
        try:
            self._wakeWriter.send(b"\0")
        except BlockingIOError:
            # The socket buffer is full of wake-ups the loop has not read yet: it will wake.
            pass

    def _drainWakeups(self) -> None:
        try:
            while self._wakeReader.recv(4096):
                pass
        except BlockingIOError:
            pass

    # -- the loop ----------------------------------------------------------------------------

    def Loop(self) -> None:
        """Runs callbacks until :meth:`StopLooping` is called. Exceptions from callbacks
        (and KeyboardInterrupt) end the loop and propagate."""
        self.continueLooping = True
        self._loopThread = threading.current_thread()
        try:
            while self.continueLooping:
                self._runOnce()
        finally:
            self.continueLooping = False
            self._loopThread = None

    def StopLooping(self) -> None:
        """Makes :meth:`Loop` return once the callback now running (if any) is done. Callable
        from callbacks and from other threads."""
        self.continueLooping = False
        self._wake()

    def _runOnce(self) -> None:
        timeout = self._timeToNextTimer()
        reads = [self._wakeReader, *self.readEvents]
        writes = list(self.writeEvents)
        excepts = list(self.exceptEvents)
        readable, writable, exceptional = select.select(reads, writes, excepts, timeout)

        if self._wakeReader in readable:
            self._drainWakeups()
            readable.remove(self._wakeReader)
        # Arrived messages first: they are the oldest events.
        # Only what was there on waking: a flood of messages must not starve the timers.
        for _ in range(len(self._posted)):
            if not self.continueLooping:
                break
            self._posted.popleft()()
        for conn in readable:
            self._callTop(self.readEvents, conn)
        for conn in writable:
            self._callTop(self.writeEvents, conn)
        for conn in exceptional:
            self._callTop(self.exceptEvents, conn)
        self._runDueTimers()

    def _callTop(self, table: dict[Connection, list[EVCallback]], conn: Connection) -> None:
        # An earlier callback of this round may have popped this connection's handler.
        handlers = table.get(conn)
        if handlers and self.continueLooping:
            handlers[0]()

    def _timeToNextTimer(self) -> float | None:
        self._dropCancelledTimers()
        if not self._timers:
            return None
        return max(0.0, self._timers[0][0] - time.monotonic())

    def _dropCancelledTimers(self) -> None:
        while self._timers and self._timers[0][1] in self._cancelledTimers:
            self._cancelledTimers.discard(heapq.heappop(self._timers)[1])

    def _runDueTimers(self) -> None:
        now = time.monotonic()
        while self.continueLooping:
            self._dropCancelledTimers()
            if not self._timers or self._timers[0][0] > now:
                return
            _, _, cb = heapq.heappop(self._timers)
            cb()


_evhandler: _EventHandler | None = None
_evhandlerLock = threading.Lock()


def GetEventHandler() -> _EventHandler:
    """The process-wide event handler (created on first use)."""
    global _evhandler
    with _evhandlerLock:
        if _evhandler is None:
            _evhandler = _EventHandler()
        return _evhandler


def SetEventHandlerStateStandalone() -> None:
    """The event handler runs its own loop: the only state this implementation has."""
    GetEventHandler()
