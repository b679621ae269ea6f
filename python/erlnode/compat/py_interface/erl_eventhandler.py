"""py_interface's event handler: one loop that runs timers, file descriptor callbacks and
mailbox callbacks, all on the thread that calls :meth:`_EventHandler.Loop`.

erlnode receives messages on its own threads; a compat mailbox only hands each message over to
this loop (:meth:`_EventHandler.Post`), so user callbacks still run one at a time on the loop's
thread as they did in py_interface. The hand-over wakes the loop through a socket pair, which
lets the loop wait for messages, timers and file descriptors with a single ``select``.

In Tk state (:func:`SetEventHandlerStateTk`) Tkinter's ``mainloop`` is the loop: file
descriptors, the hand-over socket and timers are registered with Tk instead.

Example::

    from erlnode.compat.py_interface import erl_eventhandler

    evhand = erl_eventhandler.GetEventHandler()
    evhand.AddTimerEvent(0.5, print, "half a second later")
    evhand.AddTimerEvent(1.0, evhand.StopLooping)
    evhand.Loop()
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


class ErlEventHandlerError(Exception):
    """A misuse of the event handler: ``reason`` says what.

    Example::

        try:
            erl_eventhandler.GetEventHandler().Loop()
        except erl_eventhandler.ErlEventHandlerError as e:
            print(e.reason)
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EVCallback:
    """A callback with its arguments bound; whatever the invoker passes is ignored (Tk passes
    the file descriptor and event mask).

    Example::

        cb = EVCallback(print, ("hello",), {})
        cb(3, 2)      # prints "hello"
    """

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
    """A new timer id, unique in this process.

    Example::

        assert GetNewTimerId() != GetNewTimerId()
    """
    return next(_timer_ids)


def _fileno(connection: Connection) -> int:
    return connection if isinstance(connection, int) else connection.fileno()


class _EventHandler:
    """The event loop (one per process: :func:`GetEventHandler`)."""

    STATE_STANDALONE = 1
    STATE_TK = 2
    READ = 1
    WRITE = 2
    EXCEPT = 4

    def __init__(self) -> None:
        self.state = self.STATE_STANDALONE
        self.tkTopLevel: Any = None
        # Tk timers by our timer id, so DelTimerEvent can cancel them.
        self._tkTimers: dict[int, str] = {}
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

    # -- states ------------------------------------------------------------------------------

    def _SetStateTk(self, topLevel: Any) -> None:
        """Makes Tkinter's ``topLevel.mainloop()`` the loop (see SetEventHandlerStateTk)."""
        self.state = self.STATE_TK
        self.tkTopLevel = topLevel
        for conn in {*self.readEvents, *self.writeEvents, *self.exceptEvents}:
            self._tkUpdate(conn)
        self._tkWatch(self._wakeReader.fileno(), _tkinter().READABLE, self._tkWoken)

    def SetStateStandAlone(self) -> None:
        """Makes the event handler run its own loop again (the default state).

        Example::

            erl_eventhandler.GetEventHandler().SetStateStandAlone()
        """
        if self.state == self.STATE_TK:
            for conn in {*self.readEvents, *self.writeEvents, *self.exceptEvents}:
                self.tkTopLevel.tk.deletefilehandler(_fileno(conn))
            self.tkTopLevel.tk.deletefilehandler(self._wakeReader.fileno())
        self.state = self.STATE_STANDALONE
        self.tkTopLevel = None

    def _tkWatch(self, fd: int, mask: int, callback: Callable[..., Any]) -> None:
        self.tkTopLevel.tk.createfilehandler(fd, mask, callback)

    def _tkUpdate(self, conn: Connection) -> None:
        """Registers CONN with Tk for the events it has callbacks for (one handler per file
        descriptor, as Tk allows), or unregisters it."""
        tk = _tkinter()
        fd = _fileno(conn)
        mask = 0
        for table, flag in ((self.readEvents, tk.READABLE), (self.writeEvents, tk.WRITABLE),
                            (self.exceptEvents, tk.EXCEPTION)):  # fmt: skip
            if conn in table:
                mask |= flag
        self.tkTopLevel.tk.deletefilehandler(fd)
        if mask:

            def ready(fd: int, events: int) -> None:
                for table, flag in ((self.readEvents, tk.READABLE),
                                    (self.writeEvents, tk.WRITABLE),
                                    (self.exceptEvents, tk.EXCEPTION)):  # fmt: skip
                    if events & flag:
                        self._callTop(table, conn)

            self._tkWatch(fd, mask, ready)

    def _tkWoken(self, *tkArgs: Any) -> None:
        self._drainWakeups()
        for _ in range(len(self._posted)):
            self._posted.popleft()()

    # -- file descriptors --------------------------------------------------------------------

    def PushReadEvent(
        self,
        connection: Connection,
        cbfunction: Callable[..., Any],
        *optArgs: Any,
        **namedArgs: Any,
    ) -> None:
        """Calls ``cbfunction(*optArgs, **namedArgs)`` whenever CONNECTION (a file descriptor or
        an object with ``fileno()``) is readable, until popped. Callbacks stack per connection:
        only the latest pushed is called.

        Example::

            evhand.PushReadEvent(sys.stdin, on_line)   # on_line() reads sys.stdin.readline()
        """
        self._push(self.readEvents, connection, EVCallback(cbfunction, optArgs, namedArgs))

    def PopReadEvent(self, connection: Connection) -> None:
        """Removes CONNECTION's latest read callback (the one before it is called again).

        Example::

            evhand.PopReadEvent(sys.stdin)
        """
        self._pop(self.readEvents, connection)

    def PushWriteEvent(
        self,
        connection: Connection,
        cbfunction: Callable[..., Any],
        *optArgs: Any,
        **namedArgs: Any,
    ) -> None:
        """Like :meth:`PushReadEvent`, for CONNECTION being writable.

        Example::

            evhand.PushWriteEvent(sock, send_more)
        """
        self._push(self.writeEvents, connection, EVCallback(cbfunction, optArgs, namedArgs))

    def PopWriteEvent(self, connection: Connection) -> None:
        """Removes CONNECTION's latest write callback.

        Example::

            evhand.PopWriteEvent(sock)
        """
        self._pop(self.writeEvents, connection)

    def PushExceptEvent(
        self,
        connection: Connection,
        cbfunction: Callable[..., Any],
        *optArgs: Any,
        **namedArgs: Any,
    ) -> None:
        """Like :meth:`PushReadEvent`, for an exceptional condition on CONNECTION (out-of-band
        data).

        Example::

            evhand.PushExceptEvent(sock, on_urgent_data)
        """
        self._push(self.exceptEvents, connection, EVCallback(cbfunction, optArgs, namedArgs))

    def PopExceptEvent(self, connection: Connection) -> None:
        """Removes CONNECTION's latest exception callback.

        Example::

            evhand.PopExceptEvent(sock)
        """
        self._pop(self.exceptEvents, connection)

    def _push(
        self, table: dict[Connection, list[EVCallback]], conn: Connection, cb: EVCallback
    ) -> None:
        table.setdefault(conn, []).insert(0, cb)
        if self.state == self.STATE_TK:
            self._tkUpdate(conn)

    def _pop(self, table: dict[Connection, list[EVCallback]], conn: Connection) -> None:
        handlers = table[conn]
        del handlers[0]
        if not handlers:
            del table[conn]
        if self.state == self.STATE_TK:
            self._tkUpdate(conn)

    # -- timers ------------------------------------------------------------------------------

    def AddTimerEvent(
        self, timeLeft: float, cbfunction: Callable[..., Any], *optArgs: Any, **namedArgs: Any
    ) -> int:
        """Calls ``cbfunction(*optArgs, **namedArgs)`` once, TIMELEFT seconds from now.
        Returns an id for :meth:`DelTimerEvent`. Callable from any thread.

        Example::

            timer = evhand.AddTimerEvent(1.5, mbox.Send, dest, "tick")
        """
        timerId = GetNewTimerId()
        if self.state == self.STATE_TK:
            self._tkAddTimer(timerId, timeLeft, EVCallback(cbfunction, optArgs, namedArgs))
            return timerId
        entry = (time.monotonic() + timeLeft, timerId, EVCallback(cbfunction, optArgs, namedArgs))
        if self._loopThread is None or self._loopThread is threading.current_thread():
            heapq.heappush(self._timers, entry)
        else:
            # The timer heap belongs to the loop's thread; Post also wakes the loop, whose
            # current wait may end later than this timer is due.
            self.Post(lambda: heapq.heappush(self._timers, entry))
        return timerId

    def DelTimerEvent(self, id: int) -> None:
        """Cancels the timer ID (nothing if it has fired or is unknown). Unlike py_interface,
        this works in Tk state too.

        Example::

            evhand.DelTimerEvent(timer)
        """
        if self.state == self.STATE_TK:
            afterId = self._tkTimers.pop(id, None)
            if afterId is not None:
                self.tkTopLevel.after_cancel(afterId)
            return
        if any(timerId == id for _, timerId, _ in self._timers):
            self._cancelledTimers.add(id)

    def _tkAddTimer(self, timerId: int, timeLeft: float, cb: EVCallback) -> None:
        if self._loopThread is not None and self._loopThread is not threading.current_thread():
            # Tk belongs to the loop's thread.
            self.Post(lambda: self._tkAddTimer(timerId, timeLeft, cb))
            return

        def fire() -> None:
            if self._tkTimers.pop(timerId, None) is not None:
                cb()

        self._tkTimers[timerId] = self.tkTopLevel.after(max(0, round(timeLeft * 1000)), fire)

    # -- hand-over from other threads --------------------------------------------------------

    def Post(self, work: Callable[[], None]) -> None:
        """erlnode addition: runs WORK on the loop's thread, in the order posted. Callable from
        any thread.

        Example::

            threading.Thread(target=lambda: evhand.Post(lambda: print("in the loop"))).start()
        """
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
        (and KeyboardInterrupt) end the loop and propagate. In Tk state, runs Tk's
        ``mainloop()`` instead (Tk reports exceptions from callbacks and goes on).

        Example::

            evhand.AddTimerEvent(10, evhand.StopLooping)
            evhand.Loop()
        """
        self.continueLooping = True
        self._loopThread = threading.current_thread()
        try:
            if self.state == self.STATE_TK:
                self.tkTopLevel.mainloop()
                return
            while self.continueLooping:
                self._runOnce()
        finally:
            self.continueLooping = False
            self._loopThread = None

    def StopLooping(self) -> None:
        """Makes :meth:`Loop` return once the callback now running (if any) is done. Callable
        from callbacks and from other threads. In Tk state, quits Tk's mainloop.

        Example::

            evhand.AddTimerEvent(5, evhand.StopLooping)
        """
        self.continueLooping = False
        if self.state == self.STATE_TK:
            self.Post(self.tkTopLevel.quit)
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
        if handlers and (self.continueLooping or self.state == self.STATE_TK):
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
    """The process-wide event handler (created on first use).

    Example::

        evhand = erl_eventhandler.GetEventHandler()
        evhand.AddTimerEvent(1, logon)
        evhand.Loop()
    """
    global _evhandler
    with _evhandlerLock:
        if _evhandler is None:
            _evhandler = _EventHandler()
        return _evhandler


def SetEventHandlerStateTk(top: Any) -> None:
    """Makes Tkinter's mainloop the event loop: TOP is the ``tkinter.Tk()`` (or
    ``tkinter.Tcl()``) object. ``Loop()`` then runs ``top.mainloop()``, and mailbox callbacks,
    timers and file descriptor callbacks run in it, on Tk's thread.

    Example::

        top = tkinter.Tk()
        erl_eventhandler.SetEventHandlerStateTk(top)
        erl_eventhandler.GetEventHandler().Loop()    # top.mainloop()
    """
    GetEventHandler()._SetStateTk(top)


def SetEventHandlerStateStandalone() -> None:
    """Makes the event handler run its own loop (the default).

    Example::

        erl_eventhandler.SetEventHandlerStateStandalone()
    """
    GetEventHandler().SetStateStandAlone()


def _tkinter() -> Any:
    import tkinter  # only in Tk state: most programs never need it

    return tkinter
