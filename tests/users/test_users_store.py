"""Both stores honour the same contract, against a real SQLite file and a real redis-server."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import redis

from ai_forward.users.key_cache import KeyCache
from ai_forward.users.store import UserExists, UserStore, open_store
from ai_forward.users.usage import UsageWriter
from ai_forward.users.user import User, hash_key, key_hint, new_key, utc_day

Work = Callable[[UserStore], Awaitable[None]]


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    url: str = request.getfixturevalue("redis_url")
    return url


def on_store(url: str, work: Work) -> None:
    async def run() -> None:
        async with open_store(url) as store:
            await work(store)

    asyncio.run(run())


def user(name: str, **fields: object) -> tuple[User, str]:
    key = new_key()
    made = User(name=name, key_hash=hash_key(key), key_hint=key_hint(key), created_at=1.0)
    return dataclasses.replace(made, **fields), key  # type: ignore[arg-type]


def test_users_by_name_and_key_hash(store_url: str) -> None:
    alice, key = user("alice", rpm=5, models=("m",), routes=("/",), expires_at=9e9)
    bob, _ = user("bob")

    async def work(store: UserStore) -> None:
        assert await store.by_key_hash(hash_key(key)) is None
        await store.create(alice)
        await store.create(bob)
        with pytest.raises(UserExists):
            await store.create(dataclasses.replace(alice, key_hash="other"))
        assert await store.get("alice") == alice
        assert await store.by_key_hash(hash_key(key)) == alice
        assert [u.name for u in await store.users()] == ["alice", "bob"]
        renewed, _ = user("alice", rpm=7)
        assert await store.replace(alice, renewed)
        assert await store.by_key_hash(hash_key(key)) is None
        assert await store.by_key_hash(renewed.key_hash) == renewed
        assert not await store.replace(alice, renewed)  # stale: alice's key changed since
        assert await store.delete("alice") == renewed
        assert await store.delete("alice") is None
        assert await store.by_key_hash(renewed.key_hash) is None
        assert [u.name for u in await store.users()] == ["bob"]

    on_store(store_url, work)


def test_usage_adds_up_per_day_user_and_model(store_url: str) -> None:
    today = utc_day()

    async def work(store: UserStore) -> None:
        await store.add_usage(
            {(today, "a", "m1"): (1, 10, 2, 4, 900), (today, "b", "m1"): (1, 1, 1, 0, 0)}
        )
        await store.add_usage(
            {(today, "a", "m1"): (2, 5, 5, 1, 100), (today, "a", "m2"): (1, 0, 0, 0, 0)}
        )
        await store.add_usage({("2020-01-01", "a", "m1"): (1, 1, 1, 0, 0)})
        rows = await store.usage(today, "a")
        assert [
            (r.model, r.requests, r.prompt_tokens, r.completion_tokens, r.cached_tokens)
            for r in rows
        ] == [("m1", 3, 15, 7, 5), ("m2", 1, 0, 0, 0)]
        assert rows[0].cost_nanos == 1000 and rows[0].public()["cost"] == 1e-6
        assert {r.name for r in await store.usage(today)} == {"a", "b"}

    on_store(store_url, work)


def test_changes_are_announced_to_watchers(store_url: str) -> None:
    alice, key = user("alice")

    async def work(store: UserStore) -> None:
        await store.create(alice)
        cache = KeyCache(store, ttl=60)
        async with cache:
            assert await cache.user(hash_key(key)) == alice
            assert await cache.user("nobody") is None
            await asyncio.sleep(0.1)  # let the watcher subscribe
            await store.delete("alice")
            assert await cache.user(hash_key(key)) is None

    on_store(store_url, work)


def test_usage_writer_batches_and_flushes_on_exit(store_url: str) -> None:
    async def work(store: UserStore) -> None:
        async with UsageWriter(store, interval=60) as writer:
            writer.count("a", "m", {"prompt_tokens": 3, "completion_tokens": 4})
            writer.count("a", "m", {"input_tokens": 1, "output_tokens": 1})
            writer.count("a", "m\n", None)
            assert await store.usage(utc_day()) == []  # nothing written on the request path
        rows = await store.usage(utc_day())
        assert [(r.model, r.requests, r.prompt_tokens, r.completion_tokens) for r in rows] == [
            ("m", 3, 4, 5)
        ]

    on_store(store_url, work)


def test_sqlite_calls_run_off_the_event_loop(tmp_path: Path) -> None:
    threads: set[str] = set()

    async def work(store: UserStore) -> None:
        alice, _ = user("alice")
        loop_thread = threading.current_thread().name
        original = store._write  # type: ignore[attr-defined]

        def spy(statements: object) -> object:
            threads.add(threading.current_thread().name)
            return original(statements)

        store._write = spy  # type: ignore[attr-defined]
        await store.create(alice)
        assert threads and loop_thread not in threads

    on_store(f"sqlite:///{tmp_path}/s.db", work)


def test_sqlite_store_creates_no_file_until_written(tmp_path: Path) -> None:
    async def work(store: UserStore) -> None:
        assert await store.by_key_hash("x") is None
        assert await store.users() == []

    on_store(f"sqlite:///{tmp_path}/lazy.db", work)
    assert not (tmp_path / "lazy.db").exists()


def test_redis_holds_no_key_in_clear(redis_url: str) -> None:
    alice, key = user("alice")

    async def work(store: UserStore) -> None:
        await store.create(alice)
        await store.add_usage({(utc_day(), "alice", "m"): (1, 2, 3, 0, 5)})

    on_store(redis_url, work)
    client = redis.Redis.from_url(redis_url)
    dump = b""
    for name in client.scan_iter():
        dump += name + (client.dump(name) or b"")
    assert b"alice" in dump and key.encode() not in dump and key[5:].encode() not in dump


def test_key_cache_stays_bounded_under_a_flood_of_unknown_keys(tmp_path: Path) -> None:
    async def work(store: UserStore) -> None:
        cache = KeyCache(store, ttl=60, max_entries=100)
        for i in range(1000):
            assert await cache.user(f"unknown-{i}") is None
            assert len(cache._entries) <= 100
        assert "unknown-999" in cache._entries

    on_store(f"sqlite:///{tmp_path}/s.db", work)


def test_a_sqlite_file_of_an_older_version_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE users (name TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, "
            "key_hint TEXT NOT NULL, rpm INTEGER, tpm INTEGER, models TEXT NOT NULL, "
            "routes TEXT NOT NULL, expires_at REAL, created_at REAL NOT NULL);"
            "CREATE TABLE usage (day TEXT NOT NULL, name TEXT NOT NULL, model TEXT NOT NULL, "
            "requests INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, "
            "completion_tokens INTEGER NOT NULL, PRIMARY KEY (day, name, model));"
            "INSERT INTO users VALUES ('old', 'h', 'aifd-...abcd', 5, NULL, '[]', '[]', NULL, 1);"
            "INSERT INTO usage VALUES ('2026-01-01', 'old', 'm', 2, 3, 4);"
        )

    async def work(store: UserStore) -> None:
        old = await store.get("old")
        assert old is not None and old.rpm == 5 and old.budget is None
        rows = await store.usage("2026-01-01")
        assert (rows[0].requests, rows[0].cached_tokens, rows[0].cost_nanos) == (2, 0, 0)

    on_store(f"sqlite:///{path}", work)
