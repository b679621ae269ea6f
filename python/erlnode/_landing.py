"""The thread that makes the ``bytes`` objects large binaries are received into.

A binary of 256 KiB or more in a received message is read from the socket straight into the
``bytes`` object the program gets (see ``rust/src/py/landing.rs``). Network threads never take
the GIL, so they ask this thread to make the object; it waits without the GIL in between.
"""

from __future__ import annotations

import os
import threading

from . import _erlnode

_lock = threading.Lock()
_started_in: int | None = None  # the pid whose thread serves (a forked child starts its own)


def start() -> None:
    """Starts the serving thread, once per process."""
    global _started_in
    with _lock:
        if _started_in == os.getpid():
            return
        _started_in = os.getpid()
        threading.Thread(
            target=_erlnode.serve_landings, name="erlnode-landing", daemon=True
        ).start()
