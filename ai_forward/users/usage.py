"""Usage per user, model and UTC day: counted in memory, written to the store in batches.

The request path only adds to an in-memory table; a background task writes it
every USAGE_FLUSH_INTERVAL seconds (sooner when the table is full), and the
lifespan's end writes the rest. A failed write is kept and retried.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from loguru import logger

from ..budgets.prices import Prices, usage_counts
from ..tasks import stop
from .store import UsageCount, UsageKey, UserStore
from .user import utc_day

MAX_PENDING = 10_000
_ZERO: UsageCount = (0, 0, 0, 0, 0)
_MAX_MODEL = 200


class UsageWriter:
    """Adds up requests and tokens; `flush` writes them to the store."""

    def __init__(
        self,
        store: UserStore,
        interval: float,
        max_pending: int = MAX_PENDING,
        prices: Prices | None = None,
    ) -> None:
        self.store = store
        self.prices = prices or Prices()
        self.interval = interval
        self.max_pending = max_pending
        self._pending: dict[UsageKey, UsageCount] = {}
        self._full = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> UsageWriter:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await stop(self._task)
        self._task = None
        await self.flush()

    def count(self, name: str, model: str, usage: dict[str, Any] | None) -> None:
        prompt, completion, cached = usage_counts(usage)
        cost = self.prices.cost(model, usage)
        key = (utc_day(), name, clean_model(model))
        if key not in self._pending and len(self._pending) >= self.max_pending:
            logger.warning("usage: {} rows wait to be written; dropping a count", self.max_pending)
            self._full.set()
            return
        old = self._pending.get(key, _ZERO)
        self._pending[key] = add(old, (1, prompt, completion, cached, cost))
        if len(self._pending) >= self.max_pending // 2:
            self._full.set()

    async def flush(self) -> None:
        """Write what was counted so far (before reading usage back, for instance)."""
        async with self._lock:
            batch, self._pending = self._pending, {}
            if not batch:
                return
            try:
                await self.store.add_usage(batch)
            except Exception as exc:
                logger.warning("usage: writing {} rows failed ({}); will retry", len(batch), exc)
                for key, counts in batch.items():
                    self._pending[key] = add(self._pending.get(key, _ZERO), counts)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self.interval)
            self._full.clear()
            await self.flush()


def add(a: UsageCount, b: UsageCount) -> UsageCount:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4])


def clean_model(model: str) -> str:
    cleaned = "".join(ch for ch in model if ch.isprintable())[:_MAX_MODEL]
    return cleaned or "-"
