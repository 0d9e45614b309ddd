"""Users and usage in one SQLite file, every call on one dedicated thread.

The event loop never touches the file: each method hands a function to a
single-thread executor that owns the only connection. WAL mode and a busy
timeout let `aifd users ...` and several workers share the file. The file is
created by the first write; until then lookups find nobody.

Other processes learn of reset/delete/changes through a counter in the `meta`
table, bumped in the same transaction; `watch` polls it every POLL_INTERVAL and
drops the whole key cache when it moves. In this process invalidation is
immediate.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson

from ..settings import sqlite_path
from ..user import User
from .base import (
    HOSTS_CHANGED,
    Invalidate,
    RuntimeHost,
    UsageCount,
    UsageKey,
    UsageRow,
    UserExists,
)

T = TypeVar("T")
POLL_INTERVAL = 1.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, key_hint TEXT NOT NULL,
    rpm INTEGER, tpm INTEGER, models TEXT NOT NULL, routes TEXT NOT NULL,
    expires_at REAL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS usage (
    day TEXT NOT NULL, name TEXT NOT NULL, model TEXT NOT NULL,
    requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    PRIMARY KEY (day, name, model));
CREATE TABLE IF NOT EXISTS hosts (
    host TEXT PRIMARY KEY, base_url TEXT NOT NULL, keys TEXT NOT NULL, added_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('keys_version', 0);
"""
_COLUMNS = "name, key_hash, key_hint, rpm, tpm, models, routes, expires_at, created_at"
_BUMP = "UPDATE meta SET value = value + 1 WHERE name = 'keys_version'"


class SqliteStore:
    """The embedded store (STORE_URL=sqlite:///path)."""

    def __init__(self, url: str) -> None:
        self.path = sqlite_path(url)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._local: list[Invalidate] = []

    async def __aenter__(self) -> SqliteStore:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="aifd-sqlite")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._executor is not None:
            await self._run(self._close)
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise RuntimeError("the SQLite store is used outside its `async with`")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # --- on the store's thread only ---------------------------------------

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._conn is None:
            if not create and not os.path.exists(self.path):
                return None
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self._connect(create=False)
        return [] if conn is None else conn.execute(sql, args).fetchall()

    def _write(self, statements: list[tuple[str, tuple[Any, ...]]]) -> list[int]:
        """Run `statements` in one transaction; the rows each one changed."""
        conn = self._connect(create=True)
        assert conn is not None
        changed: list[int] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, args in statements:
                changed.append(conn.execute(sql, args).rowcount)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return changed

    # --- the interface ----------------------------------------------------

    async def ping(self) -> str | None:
        try:
            await self._run(lambda: self._read("SELECT 1"))
        except (sqlite3.Error, OSError) as exc:
            return f"SQLite cannot be read ({exc})"
        return None

    async def create(self, user: User) -> None:
        sql = f"INSERT INTO users ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        try:
            await self._run(lambda: self._write([(sql, row(user))]))
        except sqlite3.IntegrityError:
            raise UserExists(user.name) from None

    async def get(self, name: str) -> User | None:
        rows = await self._run(
            lambda: self._read(f"SELECT {_COLUMNS} FROM users WHERE name = ?", (name,))
        )
        return user_of(rows[0]) if rows else None

    async def by_key_hash(self, key_hash: str) -> User | None:
        sql = f"SELECT {_COLUMNS} FROM users WHERE key_hash = ?"
        rows = await self._run(lambda: self._read(sql, (key_hash,)))
        return user_of(rows[0]) if rows else None

    async def users(self) -> list[User]:
        rows = await self._run(lambda: self._read(f"SELECT {_COLUMNS} FROM users ORDER BY name"))
        return [user_of(r) for r in rows]

    async def replace(self, old: User, new: User) -> bool:
        sql = (
            "UPDATE users SET key_hash = ?, key_hint = ?, rpm = ?, tpm = ?, models = ?, "
            "routes = ?, expires_at = ? WHERE name = ? AND key_hash = ?"
        )
        values = row(new)
        args = (*values[1:8], old.name, old.key_hash)
        changed = await self._run(lambda: self._write([(sql, args), (_BUMP, ())]))
        self._announce(old.key_hash)
        return changed[0] == 1

    async def delete(self, name: str) -> User | None:
        user = await self.get(name)
        if user is None:
            return None
        sql = "DELETE FROM users WHERE name = ? AND key_hash = ?"
        changed = await self._run(lambda: self._write([(sql, (name, user.key_hash)), (_BUMP, ())]))
        self._announce(user.key_hash)
        return user if changed[0] == 1 else None

    async def add_usage(self, counts: Mapping[UsageKey, UsageCount]) -> None:
        sql = (
            "INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (day, name, model) DO UPDATE "
            "SET requests = requests + excluded.requests, "
            "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
            "completion_tokens = completion_tokens + excluded.completion_tokens"
        )
        statements = [(sql, (*key, *count)) for key, count in counts.items()]
        if statements:
            await self._run(lambda: self._write(statements))

    async def usage(self, since: str, name: str | None = None) -> list[UsageRow]:
        sql = "SELECT * FROM usage WHERE day >= ?"
        args: tuple[Any, ...] = (since,)
        if name is not None:
            sql += " AND name = ?"
            args += (name,)
        rows = await self._run(lambda: self._read(sql + " ORDER BY day, name, model", args))
        return [UsageRow(*r) for r in rows]

    async def hosts(self) -> list[RuntimeHost]:
        sql = "SELECT host, base_url, keys, added_at FROM hosts ORDER BY host"
        rows = await self._run(lambda: self._read(sql))
        return [RuntimeHost(h, url, tuple(orjson.loads(keys)), at) for h, url, keys, at in rows]

    async def set_host(self, host: RuntimeHost) -> None:
        sql = "INSERT OR REPLACE INTO hosts VALUES (?, ?, ?, ?)"
        args = (host.host, host.base_url, orjson.dumps(host.keys).decode(), host.added_at)
        await self._run(lambda: self._write([(sql, args), (_BUMP, ())]))
        self._announce(HOSTS_CHANGED)

    async def remove_host(self, host: str) -> bool:
        sql = "DELETE FROM hosts WHERE host = ?"
        changed = await self._run(lambda: self._write([(sql, (host,)), (_BUMP, ())]))
        self._announce(HOSTS_CHANGED)
        return changed[0] == 1

    async def watch(self, invalidate: Invalidate) -> None:
        self._local.append(invalidate)
        try:
            seen = await self._run(self._version)
            while True:
                await asyncio.sleep(POLL_INTERVAL)
                version = await self._run(self._version)
                if version != seen:
                    seen = version
                    invalidate(None)
        finally:
            self._local.remove(invalidate)

    def _version(self) -> int:
        rows = self._read("SELECT value FROM meta WHERE name = 'keys_version'")
        return int(rows[0][0]) if rows else 0

    def _announce(self, key_hash: str) -> None:
        for invalidate in self._local:
            invalidate(key_hash)


def row(user: User) -> tuple[Any, ...]:
    return (
        user.name,
        user.key_hash,
        user.key_hint,
        user.rpm,
        user.tpm,
        orjson.dumps(user.models).decode(),
        orjson.dumps(user.routes).decode(),
        user.expires_at,
        user.created_at,
    )


def user_of(r: tuple[Any, ...]) -> User:
    return User(
        name=r[0],
        key_hash=r[1],
        key_hint=r[2],
        rpm=r[3],
        tpm=r[4],
        models=tuple(orjson.loads(r[5])),
        routes=tuple(orjson.loads(r[6])),
        expires_at=r[7],
        created_at=r[8],
    )
