"""The pool of upstream connections of `http1.py`: keep-alive connections per origin,
at most `limit` in use at once, a bounded wait for a free one."""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any

import aiohttp
from yarl import URL

from .http1 import Answer, ConnectFailed, Connection, PoolExhausted, PoolKey, Stale, request_head
from .types import Headers

KEEPALIVE = 15.0  # seconds an idle connection is kept (upstreams close theirs after 5 to 75)
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class Http1Pool:
    """Keep-alive connections to every upstream origin, at most `limit` in use at once."""

    def __init__(self, *, limit: int, pool_timeout: float, connect_timeout: float) -> None:
        self.limit = limit
        self.pool_timeout = pool_timeout
        self.connect_timeout = connect_timeout
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._idle: dict[PoolKey, list[Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._open: set[Connection] = set()

    async def request(self, method: str, url: URL, headers: Headers, body: bytes | None) -> Answer:
        """Send one request; the answer's body is read from the returned Answer."""
        host = url.raw_host or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        key = (url.scheme, host, port)
        head = request_head(method, url, headers, body)
        await self._acquire()
        conn: Connection | None = None
        try:
            conn = self._idle_connection(key)
            if conn is not None:
                try:
                    return await conn.send(head, body, method)
                except Stale:
                    # Closed while idle, or on reading this request: an idempotent request
                    # goes once more on a new connection; others are the retrier's to judge.
                    if method not in IDEMPOTENT:
                        raise aiohttp.ServerDisconnectedError() from None
            conn = await self._connect(key)
            try:
                return await conn.send(head, body, method)
            except Stale:
                raise aiohttp.ServerDisconnectedError() from None
        except BaseException:
            if conn is not None:
                conn.close()
                self.forget(conn)
            self._release()
            raise

    def done(self, conn: Connection, reusable: bool) -> None:
        """`conn`'s answer is over: keep it for the next request, or let it go."""
        if reusable and not conn.closed:
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(conn.key, []).append(conn)
        else:
            conn.close()
        self._release()

    def forget(self, conn: Connection) -> None:
        self._open.discard(conn)
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    def close(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()

    def _idle_connection(self, key: PoolKey) -> Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE:
                return conn
            conn.close()
        return None

    async def _connect(self, key: PoolKey) -> Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        options: dict[str, Any] = {}
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            options = {"ssl": self._ssl, "server_hostname": host}
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: Connection(self, key), host.strip("[]"), port, **options
                )
        except TimeoutError:
            raise aiohttp.ConnectionTimeoutError(f"connecting to {host}:{port}") from None
        except OSError as exc:
            raise ConnectFailed(f"{host}:{port}: {exc.strerror or exc}") from None
        self._open.add(conn)
        return conn

    async def _acquire(self) -> None:
        if self.limit and self.in_use >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(self.pool_timeout):
                    await waiter
            except TimeoutError:
                raise PoolExhausted from None
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # it was handed a slot it will not use
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            return  # the slot of the one that woke it
        self.in_use += 1

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on, in_use unchanged
                return
        self.in_use -= 1
