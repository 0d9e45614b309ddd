"""Limits in Redis: exact across processes and workers; a gone Redis follows RATE_LIMIT_FAIL."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import httpx
import openai
import pytest

from ai_forward.ratelimit.store import STORAGE_TIMEOUT
from tests.fakes import FakeUpstream, ProxyServer, free_port
from tests.processes import aifd_instance
from tests.redis_server import RedisServer

Factory = Callable[..., ProxyServer]
ROOT = Path(__file__).resolve().parents[2]  # subprocesses run this checkout
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
AUTH = {"authorization": "Bearer fk-test"}


def keyed(upstream: FakeUpstream, **env: str) -> dict[str, str]:
    return {
        "OPENAI_BASE_URL": upstream.url,
        "OPENAI_API_KEY": "sk-real",
        "FORWARD_KEY": "fk-test",
        **env,
    }


def post(proxy: ProxyServer) -> httpx.Response:
    return httpx.post(proxy.url + "/v1/chat/completions", json=BODY, headers=AUTH, timeout=10)


def test_two_processes_of_two_workers_admit_exactly_the_limit_together(
    upstream: FakeUpstream, redis_url: str, tmp_path: Path
) -> None:
    env = keyed(
        upstream,
        RATE_LIMIT_BACKEND=redis_url,
        REQ_RATE_LIMIT="/v1/chat/completions=10/minute",
        PYTHONPATH=str(ROOT),
    )

    async def burst(urls: list[str]) -> Counter[int]:
        # A fresh connection per request, so the kernel spreads them over the workers.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector, headers=AUTH) as session:

            async def one(url: str) -> int:
                async with session.post(url + "/v1/chat/completions", json=BODY) as response:
                    await response.read()
                    return response.status

            statuses = await asyncio.gather(*(one(urls[i % 2]) for i in range(40)))
        return Counter(statuses)

    with (
        aifd_instance(env, tmp_path, workers=2) as (first, _),
        aifd_instance(env, tmp_path, workers=2) as (second, _),
    ):
        assert asyncio.run(burst([first, second])) == {200: 10, 429: 30}
    assert len(upstream.requests) == 10


def test_memory_storage_with_several_workers_warns_that_limits_are_per_worker(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    env = keyed(upstream, REQ_RATE_LIMIT="10/minute", PYTHONPATH=str(ROOT))
    with aifd_instance(env, tmp_path, workers=2) as (_, proc):
        pass
    assert proc.stdout is not None
    output = proc.stdout.read()
    assert "rate limits are counted per worker" in output
    assert "RATE_LIMIT_BACKEND=redis://" in output


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which the test may stop."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.mark.parametrize("policy", ["open", "closed"])
def test_redis_gone_while_serving_follows_the_fail_policy(
    upstream: FakeUpstream, proxy_factory: Factory, own_redis: RedisServer, policy: str
) -> None:
    proxy = proxy_factory(
        **keyed(
            upstream,
            RATE_LIMIT_BACKEND=own_redis.url,
            REQ_RATE_LIMIT="2/minute",
            TPM_LIMIT="1000/minute",
            RATE_LIMIT_FAIL=policy,
        )
    )
    assert [post(proxy).status_code for _ in range(3)] == [200, 200, 429]
    own_redis.stop()
    for _ in range(4):
        started = time.monotonic()
        response = post(proxy)
        assert time.monotonic() - started < STORAGE_TIMEOUT + 1.5
        if policy == "open":
            assert response.status_code == 200
            assert "x-ratelimit-limit-requests" not in response.headers
        else:
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "rate_limit_storage_unavailable"
            assert "RATE_LIMIT_FAIL=closed" in response.json()["error"]["message"]


def test_closed_policy_is_a_503_the_sdk_understands(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    proxy = proxy_factory(
        **keyed(
            upstream,
            RATE_LIMIT_BACKEND=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
            REQ_RATE_LIMIT="2/minute",
            RATE_LIMIT_FAIL="closed",
        )
    )
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="fk-test", max_retries=0)
    with pytest.raises(openai.InternalServerError) as info:
        client.models.list()
    assert info.value.status_code == 503
    assert upstream.requests == []


def test_a_redis_that_never_answers_costs_at_most_the_storage_timeout(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    with socket.socket() as silent:  # accepts connections (in its backlog), never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        proxy = proxy_factory(
            **keyed(
                upstream,
                RATE_LIMIT_BACKEND=f"redis://127.0.0.1:{port}/0",
                REQ_RATE_LIMIT="1/minute",
            )
        )
        durations = []
        for _ in range(3):
            started = time.monotonic()
            assert post(proxy).status_code == 200
            durations.append(time.monotonic() - started)
    assert max(durations) < STORAGE_TIMEOUT + 1.0
    assert min(durations) < 0.5  # after a failure, the storage is skipped for a while
