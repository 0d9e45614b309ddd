"""The backend as the request path sees it: failures turn into bypass, with one warning.

An entry is one line of JSON about it (route, creation time, form) and the answer's
body exactly as the upstream sent it, JSON or SSE: storing a miss never re-encodes
the answer, and a hit in the same form sends those very bytes. The guard also counts
hits, misses and bypasses for `stats` (this process's, since start).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from loguru import logger

from .store import CacheStore, MemoryStore, StoreUnavailable

RETRY_AFTER = 5.0  # seconds the cache bypasses itself after its backend failed


@dataclass(frozen=True, slots=True)
class Entry:
    """A decoded entry: `form` is json or sse; `reply` is the parsed JSON (json form)."""

    form: str
    body: bytes
    reply: dict[str, Any] | None = None


@dataclass(slots=True)
class Counts:
    hits: int = 0
    misses: int = 0
    bypasses: int = 0
    stored: int = 0
    dropped: int = 0  # entries that could not be decoded


class GuardedStore:
    """Wraps a backend: `get` gives an entry as stored or None, and never raises."""

    def __init__(self, store: CacheStore, note: str | None = None) -> None:
        self.store = store
        # The memory backend, read without an await (it neither waits nor fails); else None.
        self.local = store if isinstance(store, MemoryStore) else None
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

    async def get(self, key: str) -> bytes | None:
        """The entry as stored (see `entry`); None when missing or unreachable."""
        try:
            value = await self.store.get(key)
        except StoreUnavailable as exc:
            self.failed(exc)
            return None
        if self.down_until:
            self.recovered()
        return value

    async def entry(self, key: str, value: bytes) -> Entry | None:
        """The entry `get` gave, decoded; None when it cannot be (it is then dropped)."""
        entry = decode(value)
        if entry is None:
            self.counts.dropped += 1
            logger.warning("cache: dropped an entry that could not be decoded")
            try:
                await self.store.drop(key)
            except StoreUnavailable as exc:
                self.failed(exc)
        return entry

    async def put(self, key: str, form: str, body: bytes, route: str) -> None:
        created = time.time()
        value = encode(route, created, form, body)
        try:
            await self.store.put(key, value, route, created)
        except StoreUnavailable as exc:
            self.failed(exc)
            return
        self.counts.stored += 1


def encode(route: str, created: float, form: str, body: bytes) -> bytes:
    return orjson.dumps({"route": route, "created": created, "form": form}) + b"\n" + body


def decode_head(value: bytes) -> tuple[dict[str, Any], bytes] | None:
    head, newline, body = value.partition(b"\n")
    try:
        about = orjson.loads(head) if newline else None
    except orjson.JSONDecodeError:
        return None
    return (about, body) if isinstance(about, dict) else None


def decode(value: bytes) -> Entry | None:
    decoded = decode_head(value)
    if decoded is None:
        return None
    about, body = decoded
    form = about.get("form")
    if form == "sse":
        return Entry("sse", body) if body.endswith(b"\n\n") else None
    if form != "json":
        return None
    try:
        reply = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return Entry("json", body, reply) if isinstance(reply, dict) else None
