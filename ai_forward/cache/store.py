"""Where cache entries live: the contract every backend keeps, and the memory backend.

An entry is opaque bytes under a hex key, with the route it belongs to and when
it was made (for `clear --route/--older-than`). Backends are picked by the
scheme of CACHE_BACKEND (`open_store`): memory, sqlite:///path, redis://.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from .settings import CacheSettings

# Bookkeeping a memory entry costs beyond its key and value (dict slot, dataclass).
ENTRY_OVERHEAD = 200


class StoreUnavailable(Exception):
    """The backend cannot be reached right now; the cache bypasses itself."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    entries: int
    bytes: int


class CacheStore(Protocol):
    """A backend; every method may raise StoreUnavailable."""

    name: str

    async def __aenter__(self) -> CacheStore: ...
    async def __aexit__(self, *exc: object) -> None: ...
    async def get(self, key: str) -> bytes | None: ...
    async def put(self, key: str, value: bytes, route: str, created: float) -> None: ...
    async def drop(self, key: str) -> None: ...
    async def stats(self) -> StoreStats: ...
    async def clear(self, route: str | None, before: float | None) -> int:
        """Drop entries of `route` (all routes: None) made before `before` (any time: None)."""
        ...


@dataclass(slots=True)
class MemoryEntry:
    value: bytes
    route: str
    created: float
    expires: float  # monotonic; 0: never
    size: int


class MemoryStore:
    """Entries in this process, least recently used pushed out past `max_bytes`."""

    name = "memory"

    def __init__(self, max_bytes: int, ttl: float) -> None:
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.size = 0
        self._entries: OrderedDict[str, MemoryEntry] = OrderedDict()

    async def __aenter__(self) -> MemoryStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._entries.clear()
        self.size = 0

    async def get(self, key: str) -> bytes | None:
        return self.get_now(key)

    def get_now(self, key: str) -> bytes | None:
        """`get` without an await: nothing here waits, and nothing fails."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires and entry.expires <= time.monotonic():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry.value

    async def put(self, key: str, value: bytes, route: str, created: float) -> None:
        size = len(key) + len(value) + len(route) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        self._remove(key)
        expires = time.monotonic() + self.ttl if self.ttl else 0.0
        self._entries[key] = MemoryEntry(value, route, created, expires, size)
        self.size += size
        while self.size > self.max_bytes:
            _, oldest = self._entries.popitem(last=False)
            self.size -= oldest.size

    async def drop(self, key: str) -> None:
        self._remove(key)

    async def stats(self) -> StoreStats:
        return StoreStats(len(self._entries), self.size)

    async def clear(self, route: str | None, before: float | None) -> int:
        doomed = [
            key
            for key, entry in self._entries.items()
            if (route is None or entry.route == route)
            and (before is None or entry.created < before)
        ]
        for key in doomed:
            self._remove(key)
        return len(doomed)

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size -= entry.size


def open_store(settings: CacheSettings) -> CacheStore:
    """The backend CACHE_BACKEND names (imported only when used)."""
    backend = settings.backend
    if backend.startswith("sqlite:"):
        from .sqlite_store import SQLiteStore

        return SQLiteStore(backend, settings.ttl)
    if backend.startswith(("redis:", "rediss:")):
        from .redis_store import RedisStore

        return RedisStore(backend, settings.ttl)
    return MemoryStore(settings.max_bytes, settings.ttl)
