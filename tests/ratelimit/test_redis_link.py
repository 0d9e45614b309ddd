"""The counters' own Redis connection: pipelined calls, scripts, reconnection, bounded waits."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis.exceptions

from ai_forward.ratelimit.counters import FIXED, Charge, Settlement
from ai_forward.ratelimit.redis_counters import RedisCounters, Script
from ai_forward.ratelimit.redis_link import RedisLink, plain_url
from ai_forward.ratelimit.store import STORAGE_ERRORS
from tests.redis_server import RedisServer

COUNT = Script("return redis.call('INCRBY', KEYS[1], ARGV[1])")


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which the test may stop and start."""
    server = RedisServer().start()
    yield server
    server.stop()


def test_calls_made_together_each_get_their_own_reply(redis_url: str) -> None:
    async def run() -> list[int]:
        link = RedisLink(redis_url, 1.0)
        try:
            return list(
                await asyncio.gather(
                    *(link.call(b"INCRBY", f"link:{i % 7}", i) for i in range(300))
                )
            )
        finally:
            await link.aclose()

    replies = asyncio.run(run())
    totals = [0] * 7
    for i, reply in enumerate(replies):
        totals[i % 7] += i
        assert reply == totals[i % 7]


def test_a_script_redis_forgot_is_sent_again(redis_url: str) -> None:
    async def run() -> list[int]:
        link = RedisLink(redis_url, 1.0)
        try:
            first = await link.script(COUNT, ["link:script"], [2])
            assert await link.call(b"SCRIPT", b"FLUSH") == b"OK"
            return [first, await link.script(COUNT, ["link:script"], [3])]
        finally:
            await link.aclose()

    assert asyncio.run(run()) == [2, 5]


def test_a_restarted_redis_is_connected_again(own_redis: RedisServer) -> None:
    async def run() -> None:
        link = RedisLink(own_redis.url, 1.0)
        try:
            assert await link.ping()
            own_redis.pause()
            with pytest.raises(STORAGE_ERRORS):
                await link.ping()
            with pytest.raises(STORAGE_ERRORS):
                await link.ping()  # nothing listens: the connection is refused
            own_redis.start()
            assert await link.ping()
        finally:
            await link.aclose()

    asyncio.run(run())


def test_password_and_database_come_from_the_url(own_redis: RedisServer) -> None:
    async def run() -> None:
        opener = RedisLink(own_redis.url, 1.0)
        await opener.call(b"CONFIG", b"SET", b"requirepass", b"link-pass-123")
        await opener.aclose()
        link = RedisLink(f"redis://:link-pass-123@127.0.0.1:{own_redis.port}/3", 1.0)
        try:
            assert await link.call(b"SET", b"link:db", b"three") == b"OK"
            assert b" db=3 " in await link.call(b"CLIENT", b"INFO")
        finally:
            await link.aclose()
        wrong = RedisLink(f"redis://:wrong-pass@127.0.0.1:{own_redis.port}/0", 1.0)
        with pytest.raises(redis.exceptions.AuthenticationError):
            await wrong.ping()
        await wrong.aclose()

    asyncio.run(run())


def test_a_redis_that_never_answers_fails_the_waiting_calls_within_the_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (in its backlog), never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]

        async def run() -> float:
            link = RedisLink(f"redis://127.0.0.1:{port}/0", 0.3)
            started = time.monotonic()
            results = await asyncio.gather(*(link.ping() for _ in range(5)), return_exceptions=True)
            assert all(isinstance(r, TimeoutError) for r in results), results
            await link.aclose()
            return time.monotonic() - started

        assert asyncio.run(run()) < 0.3 + 0.3


@pytest.mark.parametrize(
    ("url", "plain"),
    [
        ("redis://127.0.0.1:6379/0", True),
        ("redis://:pw@redis.internal", True),
        ("redis://user:pw@10.0.0.5:6380/2", True),
        ("rediss://127.0.0.1:6379/0", False),
        ("redis+unix:///tmp/redis.sock", False),
        ("redis+cluster://a:7000,b:7001", False),
        ("redis+sentinel://s:26379/mymaster", False),
        ("redis://127.0.0.1:6379/0?ssl_cert_reqs=none", False),
    ],
)
def test_only_plain_urls_get_the_own_connection(url: str, plain: bool) -> None:
    assert plain_url(url) is plain


def test_settlements_that_end_together_go_in_one_script_call(redis_url: str) -> None:
    async def run() -> tuple[int, list[int]]:
        link = RedisLink(redis_url, 1.0)
        sent: list[int] = []

        async def counting(script: Script, keys: list[str], args: list[str | int]) -> Any:
            sent.append(len(keys))
            return await link.script(script, keys, args)

        counters = RedisCounters(counting)
        try:
            for i in range(10):
                await counters.take((Charge(f"tpm/{i}", FIXED, 1000, 60, cost=100),))
            sent.clear()
            await asyncio.gather(
                *(counters.settle((Settlement(f"tpm/{i}", 60, -60),)) for i in range(10))
            )
            batches = list(sent)
            used = [
                (await counters.take((Charge(f"tpm/{i}", FIXED, 1000, 60, cost=0),))).counts[0]
                for i in range(10)
            ]
            return len(batches), [count.used for count in used]
        finally:
            await link.aclose()

    # The first goes alone; the nine that ended while it was on its way, together.
    assert asyncio.run(run()) == (2, [40] * 10)
