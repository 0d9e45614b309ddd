"""The counter storage of the rate limits (memory or Redis) and its fail policy.

A plain redis://host:port/db URL gets one pipelined connection of our own (see
`redis_link.py`); for the other URL forms (rediss://, redis+unix://, redis+cluster://,
redis+sentinel://), `limits` opens a redis-py client, since it knows them all. The
counting itself is ours (see `counters.py`), one operation per request instead of one
per limit and per figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from types import TracebackType
from typing import Any

import redis.exceptions
from limits.errors import StorageError
from loguru import logger

from ..errors import ServiceUnavailable
from ..signals import Signals
from ..upstream import Deadline
from .counters import Counters, MemoryCounters
from .redis_counters import RedisCounters, Script, ScriptRunner
from .redis_link import RedisLink, plain_url
from .settings import LimitSettings

# Every storage round trip of one request shares this bound: a slow or gone Redis costs a
# request at most this long, never a hang.
STORAGE_TIMEOUT = 1.0
FAIL_LOG_EVERY = 60.0
# After a failure, requests follow the fail policy at once for this long before the
# storage is tried again: a gone Redis must not cost every request the full timeout.
RETRY_STORAGE_AFTER = 2.0
STORAGE_ERRORS: tuple[type[BaseException], ...] = (
    StorageError,
    TimeoutError,
    OSError,
    redis.exceptions.RedisError,
)


class LimitStore:
    """Opens the counters for the lifespan: in this process, or in Redis."""

    def __init__(
        self, settings: LimitSettings, workers: int = 1, signals: Signals | None = None
    ) -> None:
        self.settings = settings
        self.signals = signals or Signals()
        self.workers = workers
        self._counters: Counters | None = None
        # The counters when they are this process's own: called without an await.
        self.memory: MemoryCounters | None = None
        self._client: Any = None
        self._last_logged = -math.inf
        self._retry_at = -math.inf

    @property
    def counters(self) -> Counters:
        if self._counters is None:
            raise RuntimeError("the rate limit storage is used outside the lifespan")
        return self._counters

    async def __aenter__(self) -> LimitStore:
        settings = self.settings
        if settings.counting and not settings.shared and self.workers > 1:
            logger.warning(
                "rate limits are counted per worker: RATE_LIMIT_BACKEND is memory:// and "
                "WORKERS={}, so each worker admits the full limit; set RATE_LIMIT_BACKEND="
                "redis://... for exact limits across workers",
                self.workers,
            )
        if not settings.shared:
            self._counters = self.memory = MemoryCounters()
            return self
        if plain_url(settings.backend):
            link = RedisLink(settings.backend, STORAGE_TIMEOUT)
            self._client = link
            self._counters = RedisCounters(link.script)
        else:
            self._client = redis_py_client(settings.backend)
            self._counters = RedisCounters(redis_py_runner(self._client))
        try:
            async with asyncio.timeout(STORAGE_TIMEOUT):
                await self._client.ping()
            logger.info(
                "rate limits counted in {} ({})", redact(settings.backend), settings.strategy
            )
        except STORAGE_ERRORS as exc:
            self.failed(exc, raise_closed=False)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        close = getattr(self._client, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()
        self._client = None
        self._counters = self.memory = None

    async def ping(self) -> str | None:
        """None when the storage answers, else why it does not (no password)."""
        if self._client is None:
            return None  # counted in this process
        try:
            async with asyncio.timeout(STORAGE_TIMEOUT):
                if await self._client.ping():
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


def redis_py_client(url: str) -> Any:
    """A redis-py asyncio client for any URL form `limits` knows."""
    from limits.aio.storage import Storage
    from limits.storage import storage_from_string

    # No socket_timeout: every call is bounded (STORAGE_TIMEOUT) by `redis_py_runner`, and
    # redis-py would spend a task and a timer on each read and write to enforce one.
    storage = storage_from_string(
        "async+" + url, implementation="redispy", socket_connect_timeout=STORAGE_TIMEOUT
    )
    assert isinstance(storage, Storage)
    return storage.bridge.storage  # type: ignore[attr-defined]


def redis_py_runner(client: Any) -> ScriptRunner:
    """Runs the counters' scripts through redis-py, each call bounded by STORAGE_TIMEOUT."""
    registered: dict[str, Any] = {}

    async def run(script: Script, keys: list[str], args: list[str | int]) -> Any:
        call = registered.get(script.sha)
        if call is None:
            call = registered[script.sha] = client.register_script(script.source)
        with Deadline(STORAGE_TIMEOUT):
            return await call(keys=keys, args=args)

    return run


def redact(url: str) -> str:
    """A storage URL without its password."""
    head, sep, tail = url.partition("://")
    if "@" in tail:
        tail = "***@" + tail.rpartition("@")[2]
    return head + sep + tail
