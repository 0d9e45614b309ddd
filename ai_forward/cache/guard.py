"""The backend as the request path sees it: failures turn into bypass, with one warning.

It also counts hits, misses and bypasses for `stats` (this process's, since start).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from loguru import logger

from .store import CacheStore, StoreUnavailable

RETRY_AFTER = 5.0  # seconds the cache bypasses itself after its backend failed


@dataclass(slots=True)
class Counts:
    hits: int = 0
    misses: int = 0
    bypasses: int = 0
    stored: int = 0
    dropped: int = 0  # entries that could not be decoded


class GuardedStore:
    """Wraps a backend: `get` gives a decoded entry or None, and never raises."""

    def __init__(self, store: CacheStore, note: str | None = None) -> None:
        self.store = store
        self.note = note
        self.counts = Counts()
        self.down_until = 0.0

    async def __aenter__(self) -> GuardedStore:
        if self.note:
            logger.info("cache: {}", self.note)
        await self.store.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.store.__aexit__(*exc)

    @property
    def available(self) -> bool:
        return self.down_until == 0.0 or time.monotonic() >= self.down_until

    def failed(self, exc: StoreUnavailable) -> None:
        if self.down_until == 0.0:
            logger.warning("cache bypassed: its backend failed ({}); requests go upstream", exc)
        self.down_until = time.monotonic() + RETRY_AFTER

    def recovered(self) -> None:
        if self.down_until:
            logger.info("cache: its backend answers again")
            self.down_until = 0.0

    async def get(self, key: str) -> dict[str, Any] | None:
        """The entry's reply; None when missing, undecodable (then dropped) or unreachable."""
        try:
            value = await self.store.get(key)
        except StoreUnavailable as exc:
            self.failed(exc)
            return None
        self.recovered()
        if value is None:
            return None
        reply = decode(value)
        if reply is None:
            self.counts.dropped += 1
            logger.warning("cache: dropped an entry that could not be decoded")
            try:
                await self.store.drop(key)
            except StoreUnavailable as exc:
                self.failed(exc)
        return reply

    async def put(self, key: str, reply: dict[str, Any], route: str) -> None:
        created = time.time()
        value = orjson.dumps({"route": route, "created": created, "reply": reply})
        try:
            await self.store.put(key, value, route, created)
        except StoreUnavailable as exc:
            self.failed(exc)
            return
        self.counts.stored += 1


def decode(value: bytes) -> dict[str, Any] | None:
    try:
        entry = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    reply = entry.get("reply") if isinstance(entry, dict) else None
    return reply if isinstance(reply, dict) else None
