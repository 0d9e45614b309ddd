"""Issued keys on the request path: a short-lived cache in front of the store.

A key is looked up in the store at most once per KEY_CACHE_TTL seconds per
process (unknown keys too, so random keys cannot hammer the store). A reset,
delete or change drops the key at once: the store announces it (in this process
directly; on Redis through a channel every instance listens to; on SQLite other
processes notice a change counter within a second and drop everything).
"""

from __future__ import annotations

import asyncio
import time

from loguru import logger

from ..tasks import stop
from .store import UserStore
from .user import User

MAX_ENTRIES = 10_000


class KeyCache:
    """Key hash -> user (or None for no such key), each entry for `ttl` seconds."""

    def __init__(self, store: UserStore, ttl: float, max_entries: int = MAX_ENTRIES) -> None:
        self.store = store
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, User | None]] = {}
        self._generation = 0
        self._watcher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> KeyCache:
        self._watcher = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await stop(self._watcher)
        self._watcher = None

    async def _watch(self) -> None:
        while True:
            try:
                await self.store.watch(self.drop)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("key cache: watching the user store failed; retrying")
                self.drop(None)
                await asyncio.sleep(1.0)

    async def user(self, key_hash: str) -> User | None:
        now = time.monotonic()
        entry = self._entries.get(key_hash)
        if entry is not None and entry[0] > now:
            return entry[1]
        generation = self._generation
        user = await self.store.by_key_hash(key_hash)
        # An invalidation that arrived during the lookup may concern this very key.
        if generation == self._generation and self.ttl > 0:
            if len(self._entries) >= self.max_entries:
                self._evict(now)
            self._entries[key_hash] = (now + self.ttl, user)
        return user

    def drop(self, key_hash: str | None) -> None:
        """Forget one key, or every key (None)."""
        self._generation += 1
        if key_hash is None:
            self._entries.clear()
        else:
            self._entries.pop(key_hash, None)

    def _evict(self, now: float) -> None:
        """Drop expired entries, then the oldest tenth: a flood of keys costs O(1) amortised."""
        live = [(k, v) for k, v in self._entries.items() if v[0] > now]
        if len(live) >= self.max_entries:
            live = live[len(live) - self.max_entries * 9 // 10 :]
        self._entries = dict(live)
