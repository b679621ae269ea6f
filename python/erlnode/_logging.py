"""The Rust core's log records, emitted through Python's `logging`.

The network threads never wait for the GIL: they queue their records (bounded) and this
module's thread, started with the first `Node`, emits them to the loggers
`erlnode.connection` (connections up and down), `erlnode.handshake` (handshakes, TLS,
refusals), `erlnode.epmd` and `erlnode.node`, each record with a `peer` attribute (the
peer's node name, or None). With no logging configured, WARNING and above reach stderr
through Python's last-resort handler, as before. The `erlnode` logger's effective level is
passed down to the core every second, so that records nobody wants are not even made;
`ERLNODE_LOG` (off, error, warn, info, debug, trace), when set, decides instead.

The thread spends at most a twentieth of its time emitting (CPU time, which is GIL time
here): a flood of records, thousands a second at DEBUG, would otherwise take the GIL from the
program's own threads for as long as the handlers take (about 10 µs a record for a file).
Past that share records wait in the core's queue, and once it is full they are dropped; the
count is reported as a WARNING.

Example::

    import logging
    logging.basicConfig(level=logging.INFO)   # shows connections and handshakes
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque

from . import _erlnode

_lock = threading.Lock()
_started_in: int | None = None  # the pid whose thread drains (a forked child starts its own)

#: Records taken from the core and not yet emitted, and the lock under which records are
#: taken and emitted: a record is always either in the core's queue or here, so the exit
#: handler, which takes the lock, emits every one (the thread may be stopped at any point
#: at exit).
_taken: deque[tuple[int, str, str, str | None]] = deque()
_emitting = threading.Lock()

#: How long the thread waits for records before it looks at the level again, in seconds.
_POLL = 1.0

#: The most of its time the thread spends emitting records (see the module's docstring).
_SHARE = 0.05

#: Records emitted between two pauses: short pauses, often, rather than a long one after a
#: whole queue (10,000 records).
_CHUNK = 100


def start() -> None:
    """Starts the thread that emits the core's records (once per process), and passes the
    `erlnode` logger's level down now (the thread does so every second after)."""
    global _started_in
    with _lock:
        _follow_level()
        if _started_in == os.getpid():
            return
        _started_in = os.getpid()
        thread = threading.Thread(target=_run, name="erlnode-log", daemon=True)
        thread.start()
        atexit.register(_emit_pending)


def _follow_level() -> None:
    _erlnode.set_log_level(logging.getLogger("erlnode").getEffectiveLevel())


def _run() -> None:
    dropped = 0
    while True:
        _erlnode.wait_log_records(_POLL)
        with _emitting:
            _taken.extend(_erlnode.take_log_records(0.0))
        while _taken:
            began = time.thread_time()
            with _emitting:
                for _ in range(min(_CHUNK, len(_taken))):
                    _emit(_taken.popleft())
            time.sleep((time.thread_time() - began) * (1 - _SHARE) / _SHARE)
        now_dropped = _erlnode.log_records_dropped()
        if now_dropped != dropped:
            logging.getLogger("erlnode").warning(
                "%d log record(s) of the core were dropped (the queue was full)",
                now_dropped - dropped,
            )
            dropped = now_dropped
        _follow_level()


def _emit(record: tuple[int, str, str, str | None]) -> None:
    level, name, message, peer = record
    logger = logging.getLogger(name)
    if logger.isEnabledFor(level):
        made = logger.makeRecord(
            name, level, "(erlnode core)", 0, message, (), None, extra={"peer": peer}
        )
        logger.handle(made)


def _emit_pending() -> None:
    """At exit: what the core logged last still reaches the handlers."""
    with _emitting:
        _taken.extend(_erlnode.take_log_records(0.0))
        while _taken:
            _emit(_taken.popleft())
