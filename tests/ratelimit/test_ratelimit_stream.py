"""TOKEN_RATE_LIMIT paces each streamed reply by its tokens, without holding up anything else."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
import pytest

from tests.fakes import FakeUpstream, ProxyServer
from tests.ratelimit.fakes import usage_reporting

Factory = Callable[..., ProxyServer]
T = TypeVar("T")
RATE = 20  # tokens a second
WORDS = 11  # one token each, sent by the upstream at once


@pytest.fixture
def paced(upstream: FakeUpstream, proxy_factory: Factory) -> ProxyServer:
    upstream.handler = usage_reporting(words=WORDS)
    return proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real",
        FORWARD_KEY="fk-test",
        TOKEN_RATE_LIMIT=f"/v1/chat/completions={RATE}/second",
    )


async def stream_arrivals(session: aiohttp.ClientSession, url: str) -> list[float]:
    """When each content event arrived, in seconds since the request was sent."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    started = time.monotonic()
    arrivals: list[float] = []
    async with session.post(url + "/v1/chat/completions", json=body) as response:
        assert response.status == 200
        async for line in response.content:
            if b'"content":"word"' in line:
                arrivals.append(time.monotonic() - started)
    return arrivals


async def plain_request(session: aiohttp.ClientSession, url: str) -> float:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    started = time.monotonic()
    async with session.post(url + "/v1/chat/completions", json=body) as response:
        await response.read()
        assert response.status == 200
    return time.monotonic() - started


def run(make: Callable[[aiohttp.ClientSession], Awaitable[T]]) -> T:
    async def main() -> T:
        headers = {"authorization": "Bearer fk-test"}
        async with aiohttp.ClientSession(headers=headers) as session:
            return await make(session)

    return asyncio.run(main())


def test_stream_is_relayed_no_faster_than_the_token_rate(paced: ProxyServer) -> None:
    arrivals = run(lambda s: stream_arrivals(s, paced.url))
    assert len(arrivals) == WORDS
    span = arrivals[-1] - arrivals[0]
    assert span >= (WORDS - 1) / RATE - 0.02
    assert span < (WORDS - 1) / RATE + 0.5
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 1 / RATE - 0.02


def test_paced_streams_do_not_hold_up_each_other_or_other_requests(paced: ProxyServer) -> None:
    async def together(session: aiohttp.ClientSession) -> tuple[list[float], list[float], float]:
        first = asyncio.create_task(stream_arrivals(session, paced.url))
        second = asyncio.create_task(stream_arrivals(session, paced.url))
        await asyncio.sleep(0.1)
        quick = await plain_request(session, paced.url)
        return await first, await second, quick

    first, second, quick = run(together)
    alone = (WORDS - 1) / RATE
    assert quick < alone / 2  # answered while both streams were still being paced
    assert first[-1] < alone + 0.5 and second[-1] < alone + 0.5  # side by side, not in turn


def test_non_streamed_replies_and_other_paths_are_not_paced(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = usage_reporting(words=WORDS)
    proxy = proxy_factory(OPENAI_BASE_URL=upstream.url, TOKEN_RATE_LIMIT="/v1/completions=1/second")
    arrivals = run(lambda s: stream_arrivals(s, proxy.url))
    assert arrivals[-1] - arrivals[0] < 0.3
