"""One redis-py client, opened by `async with` and closed after it (the user store, the
budget ledger)."""

from __future__ import annotations

from typing import Self

import redis.asyncio as redis


class RedisConnection:
    """Holds a client between `__aenter__` and `__aexit__`; `client` outside them is a bug."""

    # Said in the error when `client` is used outside `async with` ("the Redis store").
    what = "the Redis client"
    socket_timeout = 10.0

    def __init__(self, url: str) -> None:
        self.url = url
        self._client: redis.Redis | None = None

    async def __aenter__(self) -> Self:
        self._client = redis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=5,
            socket_timeout=self.socket_timeout,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            raise RuntimeError(f"{self.what} is used outside its `async with`")
        return self._client
