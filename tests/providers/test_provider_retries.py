"""Translated traffic is retried like any other, and a refused provider key is rotated."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from tests.fakes import FakeUpstream, ProxyServer, Recorded, json_response
from tests.providers.fakes import HI, anthropic_text, client, env


def test_anthropic_429_moves_the_retry_to_the_next_key(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    async def first_key_limited(request: web.Request, rec: Recorded) -> web.StreamResponse:
        if rec.headers.get("x-api-key") == "sk-ant-1":
            error = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}
            return await json_response(error, status=429)
        return await json_response(anthropic_text("second key"))

    providers.handler = first_key_limited
    proxy = proxy_factory(**env(upstream, providers, RETRIES="2", RETRY_BACKOFF="0.01"))
    for _ in range(3):
        reply = client(proxy).chat.completions.with_raw_response.create(
            model="claude-sonnet-4-5", messages=HI
        )
        assert reply.parse().choices[0].message.content == "second key"
    keys = [r.headers["x-api-key"] for r in providers.requests]
    # Each 429 moves the retry to key 2 at once; after a second 429 in a row key 1 cools
    # down (KEY_COOLDOWN), so the third request goes straight to key 2.
    assert keys == ["sk-ant-1", "sk-ant-2", "sk-ant-1", "sk-ant-2", "sk-ant-2"]
    assert all(r.path == "/v1/messages" for r in providers.requests)
