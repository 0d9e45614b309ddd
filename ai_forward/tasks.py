"""The background tasks of lifespan resources (sweepers, writers, watchers): stopped the
one way, by `stop`."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def stop(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel each task (None: none) and wait until it has ended; its cancellation is not
    raised here."""
    for task in tasks:
        if task is None:
            continue
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
