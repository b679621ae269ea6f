"""asyncio glue: the dispatcher thread wakes futures through their loop with this."""

from __future__ import annotations

import asyncio


def wake_future(future: asyncio.Future[None]) -> None:
    """Resolves `future` unless it is already done (cancelled by a timeout, say)."""
    if not future.done():
        future.set_result(None)
