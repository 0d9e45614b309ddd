"""Per-request bookkeeping of the forwarder that is not the request path itself: the
request id every answer carries, and the watch that notices a client hanging up."""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any

from .types import Receive

REQUEST_ID = b"x-request-id"
WATCH_AFTER = 0.2  # seconds an exchange lasts before its client's disconnect is watched


class RequestIds:
    """Request ids of our own: 16 hex digits, a random half per process and a count (no
    system call per request, unique across workers and restarts)."""

    __slots__ = ("_count", "_prefix")

    def __init__(self) -> None:
        self._prefix = os.urandom(4).hex()
        self._count = itertools.count(int.from_bytes(os.urandom(4), "big"))

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._count) & 0xFFFFFFFF:08x}"


class DisconnectWatch:
    """Cancels the exchange's task when the client disconnects.

    It starts listening only once the exchange has lasted WATCH_AFTER seconds: quick
    exchanges never pay for a second task.
    """

    __slots__ = ("finished", "gone", "receive", "task", "timer", "watcher")

    def __init__(self, receive: Receive, task: asyncio.Task[Any]) -> None:
        self.receive = receive
        self.task = task
        self.finished = False
        self.gone = False
        self.watcher: asyncio.Task[None] | None = None
        self.timer = asyncio.get_running_loop().call_later(WATCH_AFTER, self.start)

    def start(self) -> None:
        if not self.finished:
            self.watcher = asyncio.create_task(self.watch())

    async def watch(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                if not self.finished:
                    self.gone = True
                    self.task.cancel()
                return

    def stop(self) -> None:
        self.finished = True
        self.timer.cancel()
        if self.watcher is not None:
            self.watcher.cancel()
