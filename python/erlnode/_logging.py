"""The Rust core's log records, emitted through Python's `logging`.

The network threads never wait for the GIL: they queue their records (bounded) and this
module's thread, started with the first `Node`, emits them to the loggers
`erlnode.connection` (connections up and down), `erlnode.handshake` (handshakes, TLS,
refusals), `erlnode.epmd` and `erlnode.node`, each record with a `peer` attribute (the
peer's node name, or None). With no logging configured, WARNING and above reach stderr
through Python's last-resort handler, as before. The `erlnode` logger's effective level is
passed down to the core every second, so that records nobody wants are not even made;
`ERLNODE_LOG` (off, error, warn, info, debug, trace), when set, decides instead.

Example::

    import logging
    logging.basicConfig(level=logging.INFO)   # shows connections and handshakes
"""

from __future__ import annotations

import atexit
import logging
import os
import threading

from . import _erlnode

_lock = threading.Lock()
_started_in: int | None = None  # the pid whose thread drains (a forked child starts its own)

#: How long the thread waits for records before it looks at the level again, in seconds.
_POLL = 1.0


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
        records = _erlnode.take_log_records(_POLL)
        for record in records:
            _emit(record)
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
    for record in _erlnode.take_log_records(0.0):
        _emit(record)
