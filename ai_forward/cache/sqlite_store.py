"""Cache entries in a SQLite file: kept across restarts, read and written off the event loop.

One worker thread owns the connection, so every call is serialised and none blocks
the loop; expired entries are swept now and then by the same thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ..users.settings import sqlite_path
from .store import StoreStats, StoreUnavailable

T = TypeVar("T")
SWEEP_EVERY = 500  # writes between sweeps of expired entries
_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache_entries (
    key TEXT PRIMARY KEY,
    route TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    value BLOB NOT NULL
)
"""


class SQLiteStore:
    """CACHE_BACKEND=sqlite:///path.db."""

    name = "sqlite"

    def __init__(self, url: str, ttl: float) -> None:
        self.path = Path(sqlite_path(url))
        self.ttl = ttl
        self._pool: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._writes = 0

    async def __aenter__(self) -> SQLiteStore:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aifd-cache")
        await self._run(self._open)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pool is not None:
            await self._run(self._close)
            self._pool.shutdown(wait=True)
            self._pool = None

    def _open(self) -> None:
        if self.path.parent != Path():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SCHEMA)
        self._db = db

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def _run(self, call: Callable[[], T]) -> T:
        if self._pool is None:
            raise StoreUnavailable("the SQLite cache is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite cache: {exc}") from None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.OperationalError("closed")
        return self._db

    async def get(self, key: str) -> bytes | None:
        def read() -> bytes | None:
            row = (
                self._conn()
                .execute(
                    "SELECT value FROM cache_entries"
                    " WHERE key = ? AND (expires = 0 OR expires > ?)",
                    (key, time.time()),
                )
                .fetchone()
            )
            return bytes(row[0]) if row else None

        return await self._run(read)

    async def put(self, key: str, value: bytes, route: str, created: float) -> None:
        expires = created + self.ttl if self.ttl else 0.0
        self._writes += 1
        sweep = self._writes % SWEEP_EVERY == 0

        def write() -> None:
            db = self._conn()
            db.execute(
                "INSERT OR REPLACE INTO cache_entries VALUES (?, ?, ?, ?, ?)",
                (key, route, created, expires, value),
            )
            if sweep:
                db.execute(
                    "DELETE FROM cache_entries WHERE expires > 0 AND expires <= ?", (time.time(),)
                )

        await self._run(write)

    async def drop(self, key: str) -> None:
        def delete() -> None:
            self._conn().execute("DELETE FROM cache_entries WHERE key = ?", (key,))

        await self._run(delete)

    async def stats(self) -> StoreStats:
        def count() -> StoreStats:
            entries, size = (
                self._conn()
                .execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM cache_entries")
                .fetchone()
            )
            return StoreStats(int(entries), int(size))

        return await self._run(count)

    async def clear(self, route: str | None, before: float | None) -> int:
        def delete() -> int:
            cursor = self._conn().execute(
                "DELETE FROM cache_entries"
                " WHERE (? IS NULL OR route = ?) AND (? IS NULL OR created < ?)",
                (route, route, before, before),
            )
            return cursor.rowcount

        return await self._run(delete)
