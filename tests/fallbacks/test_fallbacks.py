"""A failing model's chain through the official SDK: the next provider answers, translated."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest
from aiohttp import web

from tests.fakes import FakeUpstream, ProxyServer, Recorded, chunk, sse, stream_response
from tests.fallbacks.fakes import OVERLOADED, RATE_LIMITED, TOO_LONG, failing, settings
from tests.providers.fakes import HI, client, slow

ProxyFactory = Callable[..., ProxyServer]


def test_503_after_every_retry_falls_back_to_anthropic(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    upstream.handler = failing(503, OVERLOADED)
    proxy = proxy_factory(**settings(upstream, providers))
    raw = client(proxy).chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    reply = raw.parse()
    assert reply.choices[0].message.content == "Hi from Claude"
    assert reply.model == "claude-sonnet-4-5-20250929"  # as the upstream gave it
    assert raw.headers["x-aifd-model"] == "claude-3-5-sonnet-latest"
    assert raw.headers["x-aifd-attempts"] == "gpt-4o=2, claude-3-5-sonnet-latest=1"
    assert [r.json()["model"] for r in upstream.requests] == ["gpt-4o", "gpt-4o"]
    asked = providers.last
    assert asked.path == "/v1/messages"
    assert asked.json()["model"] == "claude-3-5-sonnet-latest"
    assert asked.headers["x-api-key"] == "sk-ant-1"
    assert "sk-real-1" not in str(asked.raw_headers) + asked.body.decode()
    assert len(providers.requests) == 1


def test_503_falls_back_in_a_stream_translated_to_openai_chunks(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    upstream.handler = failing(503, OVERLOADED)
    proxy = proxy_factory(**settings(upstream, providers))
    with client(proxy).chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=HI, stream=True
    ) as response:
        assert response.headers["x-aifd-model"] == "claude-3-5-sonnet-latest"
        parts = list(response.parse())
    text = "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
    assert text
    assert all(p.object == "chat.completion.chunk" for p in parts)
    assert {p.model for p in parts} == {"claude-sonnet-4-5-20250929"}
    assert providers.last.json()["stream"] is True
    assert len(upstream.requests) == 2


def test_429_on_every_key_falls_back_to_the_next_model(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    upstream.handler = failing(429, RATE_LIMITED)
    proxy = proxy_factory(**settings(upstream, providers, OPENAI_API_KEY="sk-real-1,sk-real-2"))
    raw = client(proxy).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)
    assert raw.parse().choices[0].message.content == "Hi from Claude"
    assert raw.headers["x-aifd-model"] == "claude-3-5-haiku-latest"
    keys = [r.headers["authorization"] for r in upstream.requests]
    assert keys == ["Bearer sk-real-1", "Bearer sk-real-2"]
    assert providers.last.json()["model"] == "claude-3-5-haiku-latest"


def test_context_length_error_falls_back_at_once(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    upstream.handler = failing(400, TOO_LONG)
    proxy = proxy_factory(**settings(upstream, providers, RETRIES="3"))
    raw = client(proxy).chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert raw.parse().choices[0].message.content == "Hi from Claude"
    assert raw.headers["x-aifd-attempts"] == "gpt-4o=1, claude-3-5-sonnet-latest=1"
    assert len(upstream.requests) == 1
    # Asked uncompressed, so that the gateway could read why the model refused.
    assert upstream.last.headers["accept-encoding"] == "identity"


def test_other_400_is_answered_without_a_fallback(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    bad = {"error": {"message": "temperature too high", "type": "invalid_request_error"}}
    upstream.handler = failing(400, bad)
    proxy = proxy_factory(**settings(upstream, providers))
    with pytest.raises(openai.BadRequestError, match="temperature too high"):
        client(proxy).chat.completions.create(model="gpt-4o", messages=HI)
    assert providers.requests == []


def test_whole_chain_failing_answers_the_last_models_error(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    upstream.handler = failing(503, OVERLOADED)
    providers.handler = failing(503, OVERLOADED)
    proxy = proxy_factory(**settings(upstream, providers, RETRIES="0"))
    with pytest.raises(openai.InternalServerError) as caught:
        client(proxy).chat.completions.create(model="gpt-4o", messages=HI)
    headers = caught.value.response.headers
    assert headers["x-aifd-model"] == "gemini-1.5-pro"
    assert headers["x-aifd-attempts"] == ("gpt-4o=1, claude-3-5-sonnet-latest=1, gemini-1.5-pro=1")
    assert [r.path for r in providers.requests] == [
        "/v1/messages",
        "/v1beta/models/gemini-1.5-pro:generateContent",
    ]


def test_unreachable_upstream_falls_back(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    dead = FakeUpstream()  # never started: nothing listens on its port
    proxy = proxy_factory(**settings(upstream, providers, OPENAI_BASE_URL=dead.url))
    reply = client(proxy).chat.completions.create(model="gpt-4o", messages=HI)
    assert reply.choices[0].message.content == "Hi from Claude"


def test_stream_broken_after_its_first_chunk_is_not_asked_elsewhere(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    async def cut(request: web.Request, rec: Recorded) -> web.StreamResponse:
        events = sse(chunk(role="assistant", content="Hel"), chunk("lo"), chunk(finish="stop"))
        return await stream_response(request, events, cut_after=1)

    upstream.handler = cut
    proxy = proxy_factory(**settings(upstream, providers))
    body = {"model": "gpt-4o", "messages": HI, "stream": True}
    headers = {"authorization": "Bearer fk-test"}
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=body, headers=headers) as r:
        text = b"".join(r.iter_bytes())
    assert r.status_code == 200
    assert b'"Hel"' in text and b"stream_broken" in text
    assert len(upstream.requests) == 1
    assert providers.requests == []


def test_a_model_without_a_chain_is_unchanged(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    upstream.handler = failing(503, OVERLOADED)
    proxy = proxy_factory(**settings(upstream, providers))
    with pytest.raises(openai.InternalServerError) as caught:
        client(proxy).chat.completions.create(model="gpt-4.1", messages=HI)
    assert caught.value.response.headers["x-aifd-attempts"] == "2"
    assert "x-aifd-model" not in caught.value.response.headers
    assert providers.requests == []


def test_no_answer_before_first_byte_timeout_falls_back(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    upstream.handler = slow(5.0)
    proxy = proxy_factory(**settings(upstream, providers, RETRIES="0", FIRST_BYTE_TIMEOUT="0.3"))
    raw = client(proxy).chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert raw.parse().choices[0].message.content == "Hi from Claude"
    assert raw.headers["x-aifd-attempts"] == "gpt-4o=1, claude-3-5-sonnet-latest=1"


def test_anthropic_key_never_reaches_the_openai_fallback(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    providers.handler = failing(503, OVERLOADED)
    chains = "claude-3-5-haiku-latest=gpt-4o-mini"
    proxy = proxy_factory(**settings(upstream, providers, FALLBACKS=chains))
    raw = client(proxy).chat.completions.with_raw_response.create(
        model="claude-3-5-haiku-latest", messages=HI
    )
    assert raw.parse().choices[0].message.content == "Hello!"
    assert raw.headers["x-aifd-model"] == "gpt-4o-mini"
    assert [r.headers["x-api-key"] for r in providers.requests] == ["sk-ant-1", "sk-ant-1"]
    assert upstream.last.headers["authorization"] == "Bearer sk-real-1"
    assert "sk-ant" not in str(upstream.last.raw_headers)
    assert upstream.last.json()["model"] == "gpt-4o-mini"


def test_a_clients_own_key_is_never_sent_to_another_model(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    upstream.handler = failing(503, OVERLOADED)
    proxy = proxy_factory(**settings(upstream, providers))
    with pytest.raises(openai.InternalServerError):
        client(proxy, "sk-clients-own").chat.completions.create(model="gpt-4o", messages=HI)
    assert providers.requests == []
