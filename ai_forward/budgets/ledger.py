"""What each user spent in the current budget period, shared through STORE_URL.

    redis://   one counter per user and period, checked and charged by one Lua script:
               exact across workers and instances
    sqlite:/// one row per user and period, checked and charged in one IMMEDIATE
               transaction on the store's file: exact across the workers of one host

`reserve` charges a request's worst case only if the total stays within the budget;
`settle` adds the difference once the real cost is known (negative: a refund).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from ..redisconn import RedisConnection
from ..users.settings import sqlite_path

T = TypeVar("T")
PREFIX = "aifd:spend:"
_RESERVE = """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local cost, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if spent >= limit or spent + cost > limit then return {0, spent} end
local now = redis.call('INCRBY', KEYS[1], cost)
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return {1, now}
"""
_SETTLE = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], ARGV[1]) end
return 0
"""
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spend (key TEXT PRIMARY KEY, nanos INTEGER NOT NULL, "
    "expires REAL NOT NULL)"
)


class Ledger(Protocol):
    async def __aenter__(self) -> Ledger: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def reserve(self, key: str, cost: int, limit: int, expires: float) -> tuple[bool, int]:
        """Charge `cost` unless the total would pass `limit`; (charged, total spent)."""

    async def settle(self, key: str, delta: int) -> None: ...

    async def spent(self, key: str) -> int: ...


def open_ledger(url: str) -> Ledger:
    return SqliteLedger(url) if url.startswith("sqlite:") else RedisLedger(url)


class RedisLedger(RedisConnection):
    what = "the budget ledger"
    socket_timeout = 5.0

    async def reserve(self, key: str, cost: int, limit: int, expires: float) -> tuple[bool, int]:
        args = (cost, limit, int(expires) + 3600)
        done, total = await self.client.eval(_RESERVE, 1, PREFIX + key, *args)
        return bool(done), int(total)

    async def settle(self, key: str, delta: int) -> None:
        if delta:
            await self.client.eval(_SETTLE, 1, PREFIX + key, delta)

    async def spent(self, key: str) -> int:
        value = await self.client.get(PREFIX + key)
        return int(value) if value else 0


class SqliteLedger:
    """Spending in the SQLite store's file, every call on one dedicated thread."""

    def __init__(self, url: str) -> None:
        self.path = sqlite_path(url)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def __aenter__(self) -> SqliteLedger:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="aifd-ledger")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
            self._executor.shutdown(wait=True)
            self._executor = None

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)
            self._conn = conn
        return self._conn

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("the budget ledger is used outside its `async with`")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _reserve(self, key: str, cost: int, limit: int, expires: float) -> tuple[bool, int]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM spend WHERE expires < ?", (time.time(),))
            row = conn.execute("SELECT nanos FROM spend WHERE key = ?", (key,)).fetchone()
            spent = int(row[0]) if row else 0
            if spent >= limit or spent + cost > limit:
                conn.execute("COMMIT")
                return False, spent
            conn.execute(
                "INSERT INTO spend VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE "
                "SET nanos = nanos + excluded.nanos",
                (key, cost, expires + 3600),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return True, spent + cost

    def _settle(self, key: str, delta: int) -> None:
        self._connection().execute("UPDATE spend SET nanos = nanos + ? WHERE key = ?", (delta, key))

    def _spent(self, key: str) -> int:
        row = self._connection().execute("SELECT nanos FROM spend WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    async def reserve(self, key: str, cost: int, limit: int, expires: float) -> tuple[bool, int]:
        return await self._call(self._reserve, key, cost, limit, expires)

    async def settle(self, key: str, delta: int) -> None:
        if delta:
            await self._call(self._settle, key, delta)

    async def spent(self, key: str) -> int:
        return await self._call(self._spent, key)
