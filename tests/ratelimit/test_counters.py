"""The one-operation counters, in memory and in a real redis-server: the same rules in both."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio

from ai_forward.ratelimit.counters import (
    FIXED,
    MOVING,
    SLIDING,
    Charge,
    Counters,
    MemoryCounters,
    Settlement,
)
from ai_forward.ratelimit.redis_counters import RedisCounters
from ai_forward.ratelimit.redis_link import RedisLink
from ai_forward.ratelimit.store import STORAGE_TIMEOUT, redis_py_runner
from tests.fakes import FakeUpstream, ProxyServer
from tests.ratelimit.fakes import usage_reporting

# What TAKE and SETTLE call inside Redis.
INSIDE_SCRIPTS = {
    "time",
    "get",
    "pttl",
    "lindex",
    "rpop",
    "llen",
    "lpush",
    "pexpire",
    "incrby",
    "set",
    "hmget",
    "hset",
}
Scenario = Callable[[Counters], Awaitable[None]]


@pytest.fixture(params=["memory", "redis", "redis-py"])
def run(request: pytest.FixtureRequest, redis_url: str) -> Callable[[Scenario], None]:
    """Runs a scenario against fresh counters of the parametrized kind: in memory, in Redis
    over the counters' own connection, or over redis-py (TLS, Sentinel, Cluster URLs)."""

    def runner(scenario: Scenario) -> None:
        async def main() -> None:
            if request.param == "memory":
                await scenario(MemoryCounters())
                return
            if request.param == "redis":
                link = RedisLink(redis_url, STORAGE_TIMEOUT)
                try:
                    await scenario(RedisCounters(link.script))
                finally:
                    await link.aclose()
                return
            client: Any = redis.asyncio.Redis.from_url(redis_url)
            try:
                await scenario(RedisCounters(redis_py_runner(client)))
            finally:
                await client.aclose()

        asyncio.run(main())

    return runner


@pytest.mark.parametrize("kind", [FIXED, MOVING, SLIDING])
def test_each_strategy_admits_exactly_the_amount_and_reports_what_is_left(
    run: Callable[[Scenario], None], kind: str
) -> None:
    async def scenario(counters: Counters) -> None:
        charge = (Charge("req/a", kind, 3, 600),)
        verdicts = [await counters.take(charge) for _ in range(4)]
        assert [v.refused for v in verdicts] == [None, None, None, 0]
        assert [v.counts[0].used for v in verdicts] == [1, 2, 3, 3]
        assert all(0 < v.counts[0].reset_in <= 600 for v in verdicts)

    run(scenario)


def test_a_request_refused_by_one_limit_costs_nothing_on_the_others(
    run: Callable[[Scenario], None],
) -> None:
    async def scenario(counters: Counters) -> None:
        roomy = Charge("req/mine", MOVING, 10, 60)
        full = Charge("req/global", FIXED, 1, 60)
        tokens = Charge("tpm/mine", FIXED, 100, 60, cost=40)
        assert (await counters.take((roomy, full, tokens))).refused is None
        refused = await counters.take((roomy, full, tokens))
        assert refused.refused == 1
        assert [c.used for c in refused.counts] == [1, 1, 40]
        alone = await counters.take((roomy, tokens))
        assert [c.used for c in alone.counts] == [2, 80]

    run(scenario)


def test_settling_refunds_and_charges_a_token_counter(run: Callable[[Scenario], None]) -> None:
    async def scenario(counters: Counters) -> None:
        tokens = Charge("tpm/mine", FIXED, 100, 60, cost=50)
        await counters.take((tokens,))
        await counters.settle((Settlement("tpm/mine", 60, -45),))  # used 5 of the 50 reserved
        assert (await counters.take((tokens,))).counts[0].used == 55
        await counters.settle((Settlement("tpm/mine", 60, 30), Settlement("tpm/gone", 60, 7)))
        assert (await counters.take((tokens,))).refused == 0  # 85 + 50 > 100
        other = Charge("tpm/gone", FIXED, 100, 60, cost=1)
        assert (await counters.take((other,))).counts[0].used == 8

    run(scenario)


def test_a_window_frees_its_counts_when_it_has_passed(run: Callable[[Scenario], None]) -> None:
    async def scenario(counters: Counters) -> None:
        for kind in (FIXED, MOVING):
            charge = (Charge(f"req/{kind}", kind, 1, 1),)
            assert (await counters.take(charge)).refused is None
            assert (await counters.take(charge)).refused == 0
        await asyncio.sleep(1.05)
        for kind in (FIXED, MOVING):
            assert (await counters.take((Charge(f"req/{kind}", kind, 1, 1),))).refused is None

    run(scenario)


def test_one_redis_round_trip_before_and_one_after_each_request_whatever_the_limits(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], redis_url: str
) -> None:
    upstream.handler = usage_reporting(prompt_tokens=3, completion_tokens=4)
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real",
        FORWARD_KEY="fk-test",
        RATE_LIMIT_BACKEND=redis_url,
        REQ_RATE_LIMIT="/v1/chat/completions=1000/minute;10000/hour",
        GLOBAL_RATE_LIMIT="100000/minute",
        TPM_LIMIT="1000000/minute;10000000/day",
    )
    stats = redis.Redis.from_url(redis_url)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}
    auth = {"authorization": "Bearer fk-test"}
    with httpx.Client(base_url=proxy.url, headers=auth) as client:
        client.post("/v1/chat/completions", json=body)  # loads the scripts once
        time.sleep(0.2)
        stats.config_resetstat()
        for _ in range(10):
            response = client.post("/v1/chat/completions", json=body)
            assert response.headers["x-ratelimit-limit-requests"] == "1000"
            assert response.headers["x-ratelimit-limit-tokens"] == "1000000"
        time.sleep(0.3)  # the settlements run just after each reply
    commands = {
        name.removeprefix("cmdstat_"): value["calls"]
        for name, value in stats.info("commandstats").items()
    }
    stats.close()
    for ours in ("info", "config|resetstat"):
        commands.pop(ours, None)
    for handshake in ("hello", "client|setinfo", "select"):  # a new pooled connection, if any
        commands.pop(handshake, None)
    # Ten requests with five limits each: ten counting calls and ten settlements, no more.
    # commandstats also counts what the scripts call inside Redis: no round trips, those.
    assert commands.pop("evalsha") == 20
    assert set(commands) <= INSIDE_SCRIPTS, commands
