"""The access log: one line per request, formatted on the loop, written by a thread.

Formatting costs about a microsecond; the write happens in batches off the event loop,
so a slow terminal or pipe never slows requests. Bounded: lines beyond `max_pending`
are dropped and counted.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from types import TracebackType
from typing import TextIO


class AccessLog:
    def __init__(self, stream: TextIO | None = None, max_pending: int = 50_000) -> None:
        self._stream = stream
        self._pending: collections.deque[str] = collections.deque()
        self._max = max_pending
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._second = -1
        self._stamp = ""
        self.dropped = 0

    def write(self, message: str) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        if len(self._pending) >= self._max:
            self.dropped += 1
            return
        millis = int((now - second) * 1000)
        self._pending.append(f"{self._stamp}.{millis:03d} | ACCESS   | {message}\n")

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(0.2)
            self._wake.clear()
            self._drain()
        self._drain()

    def _drain(self) -> None:
        lines = []
        while self._pending:
            lines.append(self._pending.popleft())
        if lines:
            stream = self._stream or sys.stderr
            stream.write("".join(lines))
            stream.flush()

    async def __aenter__(self) -> AccessLog:
        self._thread = threading.Thread(target=self._run, name="aifd-access-log", daemon=True)
        self._thread.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.dropped:
            (self._stream or sys.stderr).write(f"access log: {self.dropped} lines dropped\n")
