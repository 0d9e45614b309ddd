"""Several models in one request, and the X-Host-Final host-selected upstream."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import orjson
import pytest
from aiohttp import web

from ai_forward.sse import SSEDecoder
from tests.fakes import FakeUpstream, ProxyServer, Recorded, stream_response
from tests.providers.fakes import HI, by_path, client, env, events, failing, slow

OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
SLOW = 0.8


@pytest.fixture
def fan_proxy(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> ProxyServer:
    providers.handler = by_path({"/v1/messages": failing(529, OVERLOADED), "Content": slow(SLOW)})
    return proxy_factory(**env(upstream, providers))


def test_fan_out_not_streamed_one_choice_per_model(
    upstream: FakeUpstream, fan_proxy: ProxyServer
) -> None:
    started = time.monotonic()
    reply = client(fan_proxy).chat.completions.create(
        model="gpt-4o-mini,gemini-2.0-flash,claude-sonnet-4-5", messages=HI
    )
    elapsed = time.monotonic() - started
    assert elapsed < SLOW * 2  # in parallel
    choices: list[Any] = [c.model_dump() for c in reply.choices]
    assert [c["index"] for c in choices] == [0, 1, 2]
    assert [c["model"] for c in choices] == ["gpt-4o-mini", "gemini-2.0-flash", "claude-sonnet-4-5"]
    assert choices[0]["message"]["content"] == "Hello!"
    assert choices[1]["message"]["content"] == "Hi from Gemini"
    assert choices[2]["finish_reason"] == "error"
    assert "Overloaded" in choices[2]["error"]["message"]
    assert reply.usage is not None and reply.usage.total_tokens == 7 + 9
    assert upstream.last.json()["model"] == "gpt-4o-mini"


def test_fan_out_streamed_interleaves_with_one_done(fan_proxy: ProxyServer) -> None:
    started = time.monotonic()
    arrivals: list[tuple[float, dict[str, Any]]] = []
    done = 0
    decoder = SSEDecoder()
    with httpx.stream(
        "POST",
        fan_proxy.url + "/v1/chat/completions",
        headers={"authorization": "Bearer fk-test"},
        json={
            "model": "gemini-2.0-flash,gpt-4o-mini,claude-sonnet-4-5",
            "messages": HI,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        timeout=10,
    ) as response:
        assert response.status_code == 200
        for raw in response.iter_bytes():
            for _, data in decoder.feed(raw):
                if data == b"[DONE]":
                    done += 1
                else:
                    arrivals.append((time.monotonic() - started, orjson.loads(data)))
    assert done == 1
    by_model: dict[str, str] = {}
    first_seen: dict[str, float] = {}
    for at, event in arrivals:
        for choice in event["choices"]:
            by_model[event["model"]] = by_model.get(event["model"], "") + (
                choice["delta"].get("content") or ""
            )
            first_seen.setdefault(event["model"], at)
            if choice.get("finish_reason") == "error":
                assert event["model"] == "claude-sonnet-4-5"
                assert choice["index"] == 2
                assert "Overloaded" in choice["error"]["message"]
    assert by_model["gpt-4o-mini"] == "Hello!"
    assert by_model["gemini-2.0-flash"] == "The sky is blue."
    assert first_seen["gpt-4o-mini"] < first_seen["gemini-2.0-flash"]
    usage = arrivals[-1][1]
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 14


def test_fan_out_sdk_stream_and_all_failing(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    proxy = proxy_factory(**env(upstream, providers))
    chunks = list(
        client(proxy).chat.completions.create(
            model="gpt-4o-mini,claude-sonnet-4-5", messages=HI, stream=True
        )
    )
    assert {c.model for c in chunks} == {"gpt-4o-mini", "claude-sonnet-4-5"}
    providers.handler = failing(529, OVERLOADED)
    upstream.handler = failing(429, {"error": {"message": "slow down", "type": "requests"}})
    with pytest.raises(openai.RateLimitError):
        client(proxy).chat.completions.create(model="gpt-4o-mini,claude-sonnet-4-5", messages=HI)


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("a,,b", {}),
        ("a,a", {}),
        ("gpt-4o,claude-x", {"n": 2}),
        (",".join("m" * i for i in range(1, 11)), {}),
    ],
)
def test_fan_out_bad_requests(proxy: ProxyServer, model: str, extra: dict[str, Any]) -> None:
    with pytest.raises(openai.BadRequestError):
        client(proxy).chat.completions.create(model=model, messages=HI, **extra)


def host_proxy(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], target: FakeUpstream
) -> ProxyServer:
    host = f"127.0.0.1:{target.port}"
    return proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real-1",
        FORWARD_KEY="fk-test",
        HOST_ALLOWLIST=f"http://{host},api.groq.com",
        HOST_KEYS=f"{host}=gsk-1|gsk-2",
    )


def test_x_host_final_allowed_uses_host_key(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    proxy = host_proxy(upstream, proxy_factory, providers)
    sdk = openai.OpenAI(
        base_url=proxy.url + "/openai/v1",
        api_key="fk-test",
        max_retries=0,
        default_headers={"X-Host-Final": f"127.0.0.1:{providers.port}"},
    )
    reply = sdk.chat.completions.create(model="mixtral-8x7b", messages=HI)
    assert reply.choices[0].message.content == "Hello!"
    sdk.chat.completions.create(model="mixtral-8x7b", messages=HI)
    seen = providers.requests
    assert seen[0].path == "/openai/v1/chat/completions"
    assert [r.headers["authorization"] for r in seen] == ["Bearer gsk-1", "Bearer gsk-2"]
    assert "x-host-final" not in seen[0].headers
    assert "sk-real-1" not in str(seen[0].raw_headers)
    assert upstream.requests == []
    own = httpx.post(
        proxy.url + "/v1/chat/completions",
        json={"model": "m", "messages": HI},
        headers={"authorization": "Bearer gsk-own", "x-host-final": f"127.0.0.1:{providers.port}"},
    )
    assert own.status_code == 200
    assert providers.last.headers["authorization"] == "Bearer gsk-own"


def test_x_host_final_refused(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    proxy = host_proxy(upstream, proxy_factory, providers)
    for host, code in [
        ("evil.example.com", "host_not_allowed"),
        ("api.groq.com", "host_without_key"),
    ]:
        response = httpx.post(
            proxy.url + "/v1/chat/completions",
            json={"model": "m", "messages": HI},
            headers={"authorization": "Bearer fk-test", "x-host-final": host},
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == code
    assert upstream.requests == [] and providers.requests == []


def test_fan_out_client_gone_cancels_every_model(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    async def dripping(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await stream_response(request, events("gemini_stream.sse") * 20, delay=0.3)

    providers.handler = by_path({"Content": dripping})
    proxy = proxy_factory(**env(upstream, providers))
    with httpx.stream(
        "POST",
        proxy.url + "/v1/chat/completions",
        headers={"authorization": "Bearer fk-test"},
        json={"model": "gemini-2.0-flash,gemini-2.5-flash", "messages": HI, "stream": True},
        timeout=10,
    ) as response:
        next(response.iter_bytes())
    for rec in providers.requests:
        assert rec.disconnected.wait(5)


def test_translated_stream_cut_by_provider_ends_with_error_event(
    providers: FakeUpstream, proxy: ProxyServer
) -> None:
    async def cut(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await stream_response(request, events("anthropic_stream.sse"), cut_after=4)

    providers.handler = cut
    with pytest.raises(openai.APIError) as caught:
        list(
            client(proxy).chat.completions.create(
                model="claude-sonnet-4-5", messages=HI, stream=True
            )
        )
    assert "stream" in str(caught.value.message)
