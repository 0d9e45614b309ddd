"""Cache entries in Redis, shared by every instance that points at it.

    aifd:cache:{key}    the entry (JSON with its route and creation time), expiring after CACHE_TTL

Every call is bounded in time; a failure surfaces as StoreUnavailable, and the
cache bypasses itself instead of failing the request.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as redis
from redis.exceptions import RedisError

from .guard import decode_head
from .store import StoreStats, StoreUnavailable

PREFIX = "aifd:cache:"
CALL_TIMEOUT = 2.0
_SCAN_BATCH = 500


class RedisStore:
    """CACHE_BACKEND=redis://host:port/db."""

    name = "redis"

    def __init__(self, url: str, ttl: float) -> None:
        self.url = url
        self.ttl = ttl
        self._client: redis.Redis | None = None

    async def __aenter__(self) -> RedisStore:
        self._client = redis.from_url(
            self.url, socket_connect_timeout=CALL_TIMEOUT, socket_timeout=CALL_TIMEOUT
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def client(self) -> redis.Redis:
        if self._client is None:
            raise StoreUnavailable("the Redis cache is not open")
        return self._client

    async def get(self, key: str) -> bytes | None:
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                value = await self.client().get(PREFIX + key)
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"Redis cache: {type(exc).__name__}: {exc}") from None
        return value.encode() if isinstance(value, str) else value

    async def put(self, key: str, value: bytes, route: str, created: float) -> None:
        ttl = max(1, round(self.ttl)) if self.ttl else None
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                await self.client().set(PREFIX + key, value, ex=ttl)
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"Redis cache: {type(exc).__name__}: {exc}") from None

    async def drop(self, key: str) -> None:
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                await self.client().delete(PREFIX + key)
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"Redis cache: {type(exc).__name__}: {exc}") from None

    async def stats(self) -> StoreStats:
        entries = size = 0
        try:
            client = self.client()
            async for name in client.scan_iter(match=PREFIX + "*", count=_SCAN_BATCH):
                entries += 1
                size += int(await client.strlen(name))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis cache: {type(exc).__name__}: {exc}") from None
        return StoreStats(entries, size)

    async def clear(self, route: str | None, before: float | None) -> int:
        deleted = 0
        try:
            client = self.client()
            async for name in client.scan_iter(match=PREFIX + "*", count=_SCAN_BATCH):
                filtered = route is not None or before is not None
                if filtered and not matches(await client.get(name), route, before):
                    continue
                deleted += int(await client.delete(name))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis cache: {type(exc).__name__}: {exc}") from None
        return deleted


def matches(value: bytes | str | None, route: str | None, before: float | None) -> bool:
    """Whether a stored entry is one `clear` asked for (an unreadable one always is)."""
    if value is None:
        return False
    decoded = decode_head(value.encode() if isinstance(value, str) else value)
    if decoded is None:
        return True
    about = decoded[0]
    created = about.get("created")
    if not isinstance(created, (int, float)):
        return True
    return (route is None or about.get("route") == route) and (before is None or created < before)
