"""Requests, errors and refusals per minute, and the latest errors, while the page is open.

The hook does nothing until someone signs in to or loads the dashboard; it then counts
for WATCH_SECONDS after the last page load. With nobody watching, a request costs it one
attribute check. The counts are this worker's (each worker answers the page itself).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from ..exchange import Exchange
from ..redact import Redactor

WATCH_SECONDS = 3600.0
KEEP_MINUTES = 180
KEEP_ERRORS = 50


@dataclass(frozen=True, slots=True)
class Failure:
    at: float
    status: int
    method: str
    path: str
    user: str | None
    message: str


class Activity:
    """An after-hook (first in the feature list, so it sees every refusal of the others)."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.watching = False
        self.since = 0.0
        self._until = 0.0
        # minute (Unix time // 60) -> [requests, errors, refusals]
        self.minutes: dict[int, list[int]] = {}
        self.failures: deque[Failure] = deque(maxlen=KEEP_ERRORS)

    def watch(self) -> None:
        """Count from now until WATCH_SECONDS after the last call."""
        now = time.monotonic()
        if not self.watching:
            self.watching = True
            self.since = time.time()
        self._until = now + WATCH_SECONDS

    async def before(self, ex: Exchange) -> None:
        return None

    async def after(self, ex: Exchange) -> None:
        if not self.watching:
            return
        if time.monotonic() > self._until:
            self.watching = False
            return
        now = time.time()
        minute = int(now // 60)
        counts = self.minutes.get(minute)
        if counts is None:
            counts = self.minutes[minute] = [0, 0, 0]
            for old in [m for m in self.minutes if m <= minute - KEEP_MINUTES]:
                del self.minutes[old]
        status = ex.outcome.status
        refused = 400 <= status < 500
        failed = not refused and (status >= 500 or ex.outcome.error is not None)
        counts[0] += 1
        if failed:
            counts[1] += 1
        elif refused:
            counts[2] += 1
        if failed or refused:
            user = ex.principal.name if ex.principal else None
            message = self.redactor.redact_text(ex.outcome.error or f"HTTP {status}")[:300]
            self.failures.append(Failure(now, status, ex.method, ex.path, user, message))

    def series(self, minutes: int = 60) -> list[tuple[int, list[int]]]:
        """The last `minutes` minutes, oldest first, zeros included."""
        last = int(time.time() // 60)
        return [(m, self.minutes.get(m, [0, 0, 0])) for m in range(last - minutes + 1, last + 1)]
