"""The counter storage of the rate limits (`limits`, memory or Redis) and its fail policy."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from types import TracebackType
from typing import Any

import redis.exceptions
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.errors import StorageError
from limits.storage import storage_from_string
from loguru import logger

from ..errors import ServiceUnavailable
from ..signals import Signals
from .settings import LimitSettings

# Every storage round trip of one request shares this bound: a slow or gone Redis costs a
# request at most this long, never a hang.
STORAGE_TIMEOUT = 1.0
FAIL_LOG_EVERY = 60.0
# After a failure, requests follow the fail policy at once for this long before the
# storage is tried again: a gone Redis must not cost every request the full timeout.
RETRY_STORAGE_AFTER = 2.0
SWEEP_EVERY = 10.0  # seconds; a sweep hops to a thread once per moving-window key
STORAGE_ERRORS: tuple[type[BaseException], ...] = (
    StorageError,
    TimeoutError,
    OSError,
    redis.exceptions.RedisError,
)


class LimitStore:
    """Opens the storage for the lifespan; `requests` counts with the chosen strategy.

    Token counters always use the storage's plain counters (a fixed window), because a
    reservation is settled later by a refund or an extra charge, which only a counter
    can take; a moving window would also keep one entry per token.
    """

    def __init__(
        self, settings: LimitSettings, workers: int = 1, signals: Signals | None = None
    ) -> None:
        self.settings = settings
        self.signals = signals or Signals()
        self.workers = workers
        self._storage: Storage | None = None
        self._requests: RateLimiter | None = None
        self._last_logged = -math.inf
        self._retry_at = -math.inf

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            raise RuntimeError("the rate limit storage is used outside the lifespan")
        return self._storage

    @property
    def requests(self) -> RateLimiter:
        if self._requests is None:
            raise RuntimeError("the rate limit storage is used outside the lifespan")
        return self._requests

    async def __aenter__(self) -> LimitStore:
        settings = self.settings
        options: dict[str, Any] = {"wrap_exceptions": True}
        if settings.shared:
            options.update(
                implementation="redispy",
                socket_timeout=STORAGE_TIMEOUT,
                socket_connect_timeout=STORAGE_TIMEOUT,
            )
        storage = (
            storage_from_string("async+" + settings.backend, **options)
            if settings.shared
            else MemoryCounters()
        )
        assert isinstance(storage, Storage)
        self._storage = storage
        self._requests = limiter(settings.strategy, storage)
        where = redact(settings.backend)
        if settings.counting and not settings.shared and self.workers > 1:
            logger.warning(
                "rate limits are counted per worker: RATE_LIMIT_BACKEND is memory:// and "
                "WORKERS={}, so each worker admits the full limit; set RATE_LIMIT_BACKEND="
                "redis://... for exact limits across workers",
                self.workers,
            )
        if settings.shared:
            try:
                async with asyncio.timeout(STORAGE_TIMEOUT):
                    await storage.check()
                logger.info("rate limits counted in {} ({})", where, settings.strategy)
            except STORAGE_ERRORS as exc:
                self.failed(exc, raise_closed=False)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        close = getattr(client, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
        self._storage = None
        self._requests = None

    async def ping(self) -> str | None:
        """None when the storage answers, else why it does not (no password)."""
        try:
            async with asyncio.timeout(STORAGE_TIMEOUT):
                if await self.storage.check():
                    return None
        except STORAGE_ERRORS as exc:
            cause = exc.storage_error if isinstance(exc, StorageError) else exc
            return f"{redact(self.settings.backend)} does not answer ({type(cause).__name__})"
        return f"{redact(self.settings.backend)} does not answer"

    @property
    def available(self) -> bool:
        """False for a short while after a failure, when requests skip the storage."""
        return time.monotonic() >= self._retry_at

    def failed(self, exc: BaseException | None, *, raise_closed: bool = True) -> None:
        """Apply RATE_LIMIT_FAIL to a storage failure (None: one still assumed): log (at
        most once a minute), then return (open) or raise ServiceUnavailable (closed)."""
        now = time.monotonic()
        policy = "open" if self.settings.fail_open else "closed"
        if exc is not None:
            self._retry_at = now + RETRY_STORAGE_AFTER
            self.signals.count("storage_error", "ratelimit")
        if exc is not None and now - self._last_logged >= FAIL_LOG_EVERY:
            self._last_logged = now
            cause = exc.storage_error if isinstance(exc, StorageError) else exc
            logger.error(
                "RATE LIMIT STORAGE UNREACHABLE ({}: {}) at {}: RATE_LIMIT_FAIL={}, so requests "
                "are {} without limits until it is back (logged at most once a minute)",
                type(cause).__name__,
                str(cause)[:200] or "no answer in time",
                redact(self.settings.backend),
                policy,
                "served" if self.settings.fail_open else "refused (503)",
            )
        if not self.settings.fail_open and raise_closed:
            raise ServiceUnavailable(
                "the gateway cannot reach its rate limit storage and is set to refuse "
                "requests until it is back (RATE_LIMIT_FAIL=closed); try again shortly",
                code="rate_limit_storage_unavailable",
                headers={"retry-after": "1"},
            )


class MemoryCounters(MemoryStorage):
    """limits' memory storage, sweeping out expired entries every SWEEP_EVERY seconds.

    As shipped, it starts a sweep (with a thread hop per moving-window key) after almost
    every hit, which costs more than the counting itself under load. Counting does not
    depend on the sweep; it only keeps memory bounded. Should limits rename the private
    hook overridden here, this class is simply the stock storage again.
    """

    def __init__(self) -> None:
        super().__init__()
        self._next_sweep = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_EVERY
            await super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]


def limiter(strategy: str, storage: Storage) -> RateLimiter:
    if strategy == "fixed-window":
        return FixedWindowRateLimiter(storage)
    if strategy == "sliding-window-counter":
        return SlidingWindowCounterRateLimiter(storage)
    return MovingWindowRateLimiter(storage)


def redact(url: str) -> str:
    """A storage URL without its password."""
    head, sep, tail = url.partition("://")
    if "@" in tail:
        tail = "***@" + tail.rpartition("@")[2]
    return head + sep + tail
