"""The upstream connection pool: a bounded size, and a bounded wait for a free connection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
import openai
import pytest
from aiohttp import web

from tests.fakes import FakeUpstream, ProxyServer, Recorded, chunk, sse, stream_response

Factory = Callable[..., ProxyServer]
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def slow_stream(request: web.Request, rec: Recorded) -> web.StreamResponse:
    """Four words, a quarter of a second apart: holds its connection for about a second."""
    return await stream_response(request, sse(*(chunk("word") for _ in range(4))), delay=0.25)


def test_a_request_that_gets_no_connection_in_time_is_a_503_with_retry_after(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = slow_stream
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real",
        FORWARD_KEY="fk-test",
        UPSTREAM_POOL_SIZE="1",
        POOL_TIMEOUT="0.2",
    )

    async def both() -> tuple[tuple[int, bytes], tuple[int, bytes, str, float]]:
        headers = {"authorization": "Bearer fk-test"}
        async with aiohttp.ClientSession(headers=headers) as session:

            async def holder() -> tuple[int, bytes]:
                async with session.post(proxy.url + "/v1/chat/completions", json=BODY) as r:
                    return r.status, await r.read()

            async def latecomer() -> tuple[int, bytes, str, float]:
                await asyncio.sleep(0.2)  # the holder has the only connection by now
                started = time.monotonic()
                async with session.post(proxy.url + "/v1/chat/completions", json=BODY) as r:
                    body = await r.read()
                    return r.status, body, r.headers.get("retry-after", ""), started

            first, second = await asyncio.gather(holder(), latecomer())
            return first, second

    (status, body), (late_status, late_body, retry_after, _) = asyncio.run(both())
    assert status == 200 and body.count(b"word") == 4
    assert late_status == 503 and retry_after == "1"
    assert b"upstream_pool_exhausted" in late_body and b"UPSTREAM_POOL_SIZE" in late_body
    assert len(upstream.requests) == 1
    # Once the stream has ended its connection serves the next request; the SDK reads the
    # 503 as a retryable server error.
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="fk-test", max_retries=0)
    assert (
        "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(**BODY))
        == "word" * 4
    )


def test_pool_settings_are_validated(proxy_factory: Factory) -> None:
    from ai_forward.settings import Settings, SettingsError

    assert Settings.from_env({}).pool_size == 10000
    assert Settings.from_env({"UPSTREAM_POOL_SIZE": "0"}).pool_size == 0
    with pytest.raises(SettingsError, match="UPSTREAM_POOL_SIZE"):
        Settings.from_env({"UPSTREAM_POOL_SIZE": "-1"})
    with pytest.raises(SettingsError, match="POOL_TIMEOUT"):
        Settings.from_env({"POOL_TIMEOUT": "0"})
