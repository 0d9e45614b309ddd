"""Bad entries, a backend that goes away, and the memory bound."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from redis import Redis

from ai_forward.cache.store import MemoryStore
from tests.cache.fakes import ask, numbered, sdk
from tests.fakes import FakeUpstream, ProxyServer
from tests.redis_server import RedisServer

ProxyFactory = Callable[..., ProxyServer]
ADMIN = "admin-token-0123456789"


def test_undecodable_entry_is_a_miss_and_is_dropped(
    upstream: FakeUpstream, proxy_factory: ProxyFactory, tmp_path: Path
) -> None:
    numbered(upstream)
    db = tmp_path / "cache.db"
    proxy = proxy_factory(OPENAI_BASE_URL=upstream.url, CACHE_BACKEND=f"sqlite:///{db}")
    client = sdk(proxy.url, key="sk-client")
    assert ask(client) == ("answer 1", "miss")
    # The entry is written once the answer has gone out: wait for it, then damage it.
    deadline = time.monotonic() + 5
    damaged = 0
    while not damaged and time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            damaged = conn.execute("UPDATE cache_entries SET value = x'00ff7b'").rowcount
        time.sleep(0.02)
    assert damaged == 1
    assert ask(client) == ("answer 2", "miss")
    assert ask(client) == ("answer 2", "hit")  # the bad entry was replaced by a good one
    assert len(upstream.requests) == 2


def test_redis_gone_turns_the_cache_into_bypass_with_one_warning(
    upstream: FakeUpstream, proxy_factory: ProxyFactory, loguru_lines: list[str]
) -> None:
    numbered(upstream)
    redis = RedisServer().start()
    try:
        proxy = proxy_factory(OPENAI_BASE_URL=upstream.url, CACHE_BACKEND=redis.url)
        client = sdk(proxy.url, key="sk-client")
        assert ask(client) == ("answer 1", "miss")
        stored = Redis.from_url(redis.url)
        deadline = time.monotonic() + 5
        while not stored.keys("aifd:cache:*") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ask(client) == ("answer 1", "hit")
    finally:
        redis.stop()
    answers = [ask(client) for _ in range(3)]
    assert answers == [("answer 2", "bypass"), ("answer 3", "bypass"), ("answer 4", "bypass")]
    warnings = [line for line in loguru_lines if "cache bypassed" in line]
    assert len(warnings) == 1
    assert "sk-client" not in "".join(loguru_lines)


def test_memory_backend_never_grows_past_its_bound() -> None:
    async def fill() -> None:
        store = MemoryStore(max_bytes=10_000, ttl=0)
        rng = random.Random(7)
        for i in range(2_000):
            await store.put(f"key{i}", b"x" * rng.randrange(1, 3_000), "openai", float(i))
            assert store.size <= 10_000
            stats = await store.stats()
            assert stats.bytes == store.size
        await store.put("huge", b"x" * 20_000, "openai", 0.0)
        assert await store.get("huge") is None
        assert store.size <= 10_000

    asyncio.run(fill())


def test_memory_backend_pushes_out_the_least_recently_used() -> None:
    async def use() -> list[bytes | None]:
        store = MemoryStore(max_bytes=3 * (4 + 100 + 6 + 200), ttl=0)
        for name in ("key1", "key2", "key3"):
            await store.put(name, b"v" * 100, "openai", 0.0)
        await store.get("key1")  # used: key2 is now the oldest
        await store.put("key4", b"v" * 100, "openai", 0.0)
        return [await store.get(name) for name in ("key1", "key2", "key3", "key4")]

    assert [value is not None for value in asyncio.run(use())] == [True, False, True, True]


def test_gateway_memory_cache_stays_within_cache_max_bytes(
    upstream: FakeUpstream, proxy_factory: ProxyFactory, tmp_path: Path
) -> None:
    numbered(upstream)
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        CACHE_MAX_BYTES="4KB",
        ADMIN_TOKEN=ADMIN,
        STORE_URL=f"sqlite:///{tmp_path}/users.db",
    )
    client = sdk(proxy.url, key="sk-client")

    def header(i: int) -> str:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"question {i}"}],
            extra_body={"caching": True},
        )
        return raw.headers["x-aifd-cache"]

    assert [header(i) for i in range(30)] == ["miss"] * 30
    stats = httpx.get(proxy.url + "/admin/cache", headers={"authorization": f"Bearer {ADMIN}"})
    figures = stats.json()
    assert 0 < figures["bytes"] <= 4000
    assert 0 < figures["entries"] < 30
    assert figures["misses"] == 30
    assert header(29) == "hit"
    assert header(0) == "miss"  # pushed out long ago


def test_keys_never_reach_the_cache(
    upstream: FakeUpstream, proxy_factory: ProxyFactory, tmp_path: Path
) -> None:
    numbered(upstream)
    db = tmp_path / "cache.db"
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real-secret-1234",
        FORWARD_KEY="fk-forward-secret-5678",
        CACHE_BACKEND=f"sqlite:///{db}",
    )
    assert ask(sdk(proxy.url, key="fk-forward-secret-5678")) == ("answer 1", "miss")
    assert ask(sdk(proxy.url, key="sk-relayed-secret-9012")) == ("answer 2", "miss")
    deadline = time.monotonic() + 5
    rows: list[tuple[str, str, bytes]] = []
    while len(rows) < 2 and time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT key, route, value FROM cache_entries").fetchall()
        time.sleep(0.02)
    assert len(rows) == 2
    stored = b"".join(key.encode() + route.encode() + value for key, route, value in rows)
    for secret in (b"real-secret", b"forward-secret", b"relayed-secret"):
        assert secret not in stored
