"""End to end: the official SDK and raw clients through the real proxy to a fake upstream."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import httpx
import openai
import pytest
from aiohttp import web

from ai_forward.exchange import Exchange, Outcome
from tests.fakes import (
    FakeUpstream,
    ProxyServer,
    Recorded,
    chunk,
    json_response,
    sse,
    stream_response,
)


@pytest.fixture(params=["builtin", "aiohttp"])
def proxy(
    request: pytest.FixtureRequest,
    upstream: FakeUpstream,
    proxy_factory: Callable[..., ProxyServer],
) -> ProxyServer:
    """The gateway in front of `upstream`, with each of its upstream clients in turn."""
    return proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real-1,sk-real-2",
        FORWARD_KEY="fk-test",
        UPSTREAM_CLIENT=request.param,
    )


def client(proxy: ProxyServer, key: str = "fk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key=key, max_retries=0)


def test_chat_completion_swaps_forward_key_for_real_key(
    upstream: FakeUpstream, proxy: ProxyServer
) -> None:
    reply = client(proxy).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "Hello!"
    seen = upstream.last
    assert seen.method == "POST"
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer sk-real-1"
    assert "fk-test" not in str(seen.raw_headers)
    assert seen.json() == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_real_keys_are_used_round_robin(upstream: FakeUpstream, proxy: ProxyServer) -> None:
    sdk = client(proxy)
    for _ in range(4):
        sdk.models.list()
    keys = [r.headers["authorization"] for r in upstream.requests]
    assert keys == ["Bearer sk-real-1", "Bearer sk-real-2"] * 2


def test_other_keys_are_relayed_unchanged(upstream: FakeUpstream, proxy: ProxyServer) -> None:
    client(proxy, key="sk-clients-own").models.list()
    assert upstream.last.headers["authorization"] == "Bearer sk-clients-own"


@pytest.mark.parametrize("header", ["api-key", "x-api-key"])
def test_forward_key_in_key_headers_is_swapped_in_place(
    upstream: FakeUpstream, proxy: ProxyServer, header: str
) -> None:
    response = httpx.get(proxy.url + "/v1/models", headers={header: "fk-test"})
    assert response.status_code == 200
    assert upstream.last.headers[header] == "sk-real-1"
    assert "authorization" not in upstream.last.headers


def test_exact_bytes_pass_both_ways(upstream: FakeUpstream, proxy: ProxyServer) -> None:
    raw = b'{"model":"x",  "messages":[],"weird":  1.50}'

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return web.Response(
            body=b'{"odd":  "spacing" }',
            status=201,
            content_type="application/json",
            headers={
                "x-request-id": "req-9",
                "openai-processing-ms": "12",
                "openai-organization": "org",
                "x-ratelimit-remaining-requests": "99",
                "retry-after": "3",
            },
        )

    upstream.handler = handler
    response = httpx.post(
        proxy.url + "/v1/anything/deep?x=1&y=%2F",
        content=raw,
        headers={
            "authorization": "Bearer fk-test",
            "content-type": "application/json",
            "x-custom": "kept",
            "connection": "keep-alive, x-hop",
            "x-forwarded-for": "10.1.1.1",
        },
    )
    assert response.status_code == 201
    assert response.content == b'{"odd":  "spacing" }'
    for name, value in [
        ("x-request-id", "req-9"),
        ("openai-processing-ms", "12"),
        ("openai-organization", "org"),
        ("x-ratelimit-remaining-requests", "99"),
        ("retry-after", "3"),
    ]:
        assert response.headers[name] == value
    seen = upstream.last
    assert seen.body == raw
    assert seen.path == "/v1/anything/deep"
    assert seen.query == "x=1&y=%2F"
    assert seen.headers["x-custom"] == "kept"
    assert seen.headers["host"] == f"127.0.0.1:{upstream.port}"
    assert seen.headers["x-forwarded-for"] == "10.1.1.1, 127.0.0.1"
    assert "x-hop" not in seen.headers


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT", "PATCH"])
def test_methods_pass_through(upstream: FakeUpstream, proxy: ProxyServer, method: str) -> None:
    response = httpx.request(
        method, proxy.url + "/v1/files/file-1?limit=2", headers={"authorization": "Bearer fk-test"}
    )
    assert response.json() == {
        "method": method,
        "path": "/v1/files/file-1",
        "query": "limit=2",
        "size": 0,
    }


def test_stream_chunks_arrive_before_upstream_finishes(
    upstream: FakeUpstream, proxy: ProxyServer
) -> None:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        events = sse(*(chunk(f"w{i} ") for i in range(5)))
        return await stream_response(request, events, delay=0.3)

    upstream.handler = handler
    started = time.monotonic()
    arrivals: list[float] = []
    words: list[str] = []
    stream = client(proxy).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    for part in stream:
        arrivals.append(time.monotonic() - started)
        words.append(part.choices[0].delta.content or "")
    assert "".join(words) == "w0 w1 w2 w3 w4 "
    assert arrivals[0] < 0.6, arrivals
    assert arrivals[-1] > 1.2, arrivals
    assert upstream.last.json()["stream"] is True


def test_async_sdk_streams(upstream: FakeUpstream, proxy: ProxyServer) -> None:
    async def main() -> str:
        sdk = openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="fk-test", max_retries=0)
        stream = await sdk.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join([part.choices[0].delta.content or "" async for part in stream])
        await sdk.close()
        return text

    assert asyncio.run(main()) == "Hello!"
    assert upstream.last.headers["authorization"] == "Bearer sk-real-1"


def test_embeddings(upstream: FakeUpstream, proxy: ProxyServer) -> None:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await json_response(
            {
                "object": "list",
                "model": "text-embedding-3-small",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
                "usage": {"prompt_tokens": 2, "total_tokens": 2},
            }
        )

    upstream.handler = handler
    result = client(proxy).embeddings.create(model="text-embedding-3-small", input="hello")
    assert result.data[0].embedding == [0.1, 0.2]
    assert upstream.last.path == "/v1/embeddings"


def test_file_upload_multipart_reaches_upstream_intact(
    upstream: FakeUpstream, proxy: ProxyServer
) -> None:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await json_response(
            {
                "id": "file-1",
                "object": "file",
                "bytes": len(rec.body),
                "created_at": 1,
                "filename": "data.jsonl",
                "purpose": "fine-tune",
                "status": "processed",
            }
        )

    upstream.handler = handler
    content = b'{"prompt": "a"}\n' * 5000
    created = client(proxy).files.create(file=("data.jsonl", content), purpose="fine-tune")
    assert created.id == "file-1"
    seen = upstream.last
    assert seen.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert content in seen.body
    assert created.bytes == len(seen.body)


def test_audio_upload(upstream: FakeUpstream, proxy: ProxyServer) -> None:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await json_response({"text": "transcribed"})

    upstream.handler = handler
    audio = bytes(range(256)) * 400
    text = client(proxy).audio.transcriptions.create(model="whisper-1", file=("a.mp3", audio))
    assert text.text == "transcribed"
    assert audio in upstream.last.body
    assert upstream.last.path == "/v1/audio/transcriptions"


def test_compressed_bodies_pass_unchanged(upstream: FakeUpstream, proxy: ProxyServer) -> None:
    payload = b'{"big": "' + b"x" * 5000 + b'"}'

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return web.Response(
            body=gzip.compress(payload),
            content_type="application/json",
            headers={"content-encoding": "gzip"},
        )

    upstream.handler = handler
    response = httpx.get(
        proxy.url + "/v1/models",
        headers={"authorization": "Bearer fk-test", "accept-encoding": "gzip"},
    )
    assert response.headers["content-encoding"] == "gzip"
    assert response.content == payload
    # Real keys are configured: answers are asked uncompressed, so they can be searched for
    # echoed keys; a body the upstream compresses anyway still passes unchanged.
    assert upstream.last.headers["accept-encoding"] == "identity"


def test_upstream_errors_pass_through(upstream: FakeUpstream, proxy: ProxyServer) -> None:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await json_response(
            {
                "error": {
                    "message": "bad key",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            },
            status=401,
        )

    upstream.handler = handler
    with pytest.raises(openai.AuthenticationError) as info:
        client(proxy).models.list()
    assert info.value.status_code == 401
    assert "bad key" in str(info.value)


def test_two_prefixes_reach_two_upstreams_longest_wins(proxy_factory) -> None:  # type: ignore[no-untyped-def]
    main, local = FakeUpstream().start(), FakeUpstream().start()
    try:
        proxy = proxy_factory(
            OPENAI_BASE_URL=main.url,
            EXTRA_BASE_URL=local.url + "/api",
            EXTRA_ROUTE_PREFIX="/localai",
            FORWARD_KEY="fk",
            OPENAI_API_KEY="sk-main",
        )
        assert httpx.get(proxy.url + "/localai/v1/models").json()["path"] == "/api/v1/models"
        assert httpx.get(proxy.url + "/localaix/v1/models").json()["path"] == "/localaix/v1/models"
        assert httpx.get(proxy.url + "/v1/models").json()["path"] == "/v1/models"
        assert [len(main.requests), len(local.requests)] == [2, 1]
        local_client = openai.OpenAI(
            base_url=proxy.url + "/localai/v1", api_key="fk", max_retries=0
        )
        assert local_client.chat.completions.create(model="llama", messages=[]).choices
        assert "authorization" not in local.last.headers
    finally:
        main.stop()
        local.stop()


def test_unknown_prefix_is_openai_shaped_404(upstream: FakeUpstream, proxy_factory) -> None:  # type: ignore[no-untyped-def]
    proxy = proxy_factory(OPENAI_BASE_URL=upstream.url, OPENAI_ROUTE_PREFIX="/openai")
    response = httpx.get(proxy.url + "/v1/models")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "route_not_found"
    assert "/openai" in error["message"]
    assert upstream.requests == []
    assert httpx.get(proxy.url + "/openai/v1/models").status_code == 200


def test_healthz_answers_locally(upstream: FakeUpstream, proxy: ProxyServer) -> None:
    response = httpx.get(proxy.url + "/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert upstream.requests == []


def test_oversized_body_is_413_and_server_keeps_serving(
    upstream: FakeUpstream, proxy_factory
) -> None:  # type: ignore[no-untyped-def]
    proxy = proxy_factory(OPENAI_BASE_URL=upstream.url, MAX_BODY_SIZE="1KB")
    response = httpx.post(proxy.url + "/v1/chat/completions", content=b"x" * 5000)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"

    def chunked():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b"y" * 500

    response = httpx.post(proxy.url + "/v1/chat/completions", content=chunked())
    assert response.status_code == 413
    assert upstream.requests == []
    assert httpx.get(proxy.url + "/v1/models").status_code == 200


def test_unreachable_upstream_is_502_naming_route_not_key(proxy_factory) -> None:  # type: ignore[no-untyped-def]
    from tests.fakes import free_port

    proxy = proxy_factory(
        OPENAI_BASE_URL=f"http://127.0.0.1:{free_port()}",
        OPENAI_API_KEY="sk-secret-real",
        FORWARD_KEY="fk",
    )
    with pytest.raises(openai.APIStatusError) as info:
        client(proxy, "fk").models.list()
    assert info.value.status_code == 502
    body = info.value.response.text
    assert "openai" in body and "sk-secret-real" not in body
    assert info.value.response.json()["error"]["code"] == "upstream_unreachable"
    assert httpx.get(proxy.url + "/healthz").status_code == 200


def test_malformed_json_is_forwarded_for_the_upstream_to_judge(
    upstream: FakeUpstream, proxy: ProxyServer
) -> None:
    response = httpx.post(
        proxy.url + "/v1/embeddings",
        content=b"{not json",
        headers={"authorization": "Bearer fk-test", "content-type": "application/json"},
    )
    assert response.status_code == 200
    assert upstream.last.body == b"{not json"


def test_cors_preflight_is_answered_locally(upstream: FakeUpstream, proxy: ProxyServer) -> None:
    response = httpx.options(
        proxy.url + "/v1/chat/completions",
        headers={
            "origin": "https://app.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] in ("*", "https://app.example")
    assert upstream.requests == []
    simple = httpx.get(proxy.url + "/v1/models", headers={"origin": "https://app.example"})
    assert simple.headers["access-control-allow-origin"] == "*"


def test_client_disconnect_mid_stream_closes_upstream(
    upstream: FakeUpstream, proxy: ProxyServer
) -> None:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await stream_response(request, sse(*(chunk("x") for _ in range(100))), delay=0.1)

    upstream.handler = handler

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                proxy.url + "/v1/chat/completions",
                json={"model": "m", "stream": True},
                headers={"authorization": "Bearer fk-test"},
            )
            await response.content.readline()
            response.close()

    asyncio.run(main())
    assert upstream.last.disconnected.wait(2.0)
    assert httpx.get(proxy.url + "/healthz").status_code == 200


def test_stream_cut_by_upstream_ends_with_error_event(
    upstream: FakeUpstream, proxy: ProxyServer
) -> None:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await stream_response(request, sse(chunk("a"), chunk("b"), chunk("c")), cut_after=2)

    upstream.handler = handler
    with httpx.stream(
        "POST",
        proxy.url + "/v1/chat/completions",
        json={"stream": True},
        headers={"authorization": "Bearer fk-test"},
        timeout=5,
    ) as response:
        text = b"".join(response.iter_bytes()).decode()
    assert text.count('"content":') == 2
    assert text.rstrip().endswith('"code":"stream_broken"}}')


def test_cors_only_for_allowed_origins(upstream: FakeUpstream, proxy_factory) -> None:  # type: ignore[no-untyped-def]
    proxy = proxy_factory(OPENAI_BASE_URL=upstream.url, CORS_ORIGINS="https://ok.example")
    preflight = {"access-control-request-method": "POST"}
    allowed = httpx.options(
        proxy.url + "/v1/models", headers={"origin": "https://ok.example", **preflight}
    )
    assert allowed.headers["access-control-allow-origin"] == "https://ok.example"
    denied = httpx.options(
        proxy.url + "/v1/models", headers={"origin": "https://evil.example", **preflight}
    )
    assert denied.status_code == 400
    assert "access-control-allow-origin" not in denied.headers
    plain = httpx.get(proxy.url + "/v1/models", headers={"origin": "https://evil.example"})
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers
    assert upstream.requests and all(r.method == "GET" for r in upstream.requests)


def test_client_hanging_up_after_done_is_a_complete_exchange(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    """The SDKs close the connection at [DONE]; the upstream's EOF may come later."""

    async def lingering(request: web.Request, rec: Recorded) -> web.StreamResponse:
        events = sse(chunk("a"), chunk("b"), chunk(finish="stop"))
        return await stream_response(request, events, delay=0.15)

    upstream.handler = lingering
    proxy = proxy_factory(OPENAI_BASE_URL=upstream.url, OPENAI_API_KEY="sk-1", FORWARD_KEY="fk")
    app: Any = proxy.server.config.app
    gateway: Any = getattr(app, "app", app)
    outcomes: list[Outcome] = []

    class Keep:
        async def before(self, ex: Exchange) -> None:
            ex.observe = True

        async def after(self, ex: Exchange) -> None:
            outcomes.append(ex.outcome)

    gateway.forwarder.hooks = (*gateway.forwarder.hooks, Keep())
    sdk = openai.OpenAI(base_url=proxy.url + "/v1", api_key="fk", max_retries=0)
    with sdk.chat.completions.create(model="m", messages=[], stream=True) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "ab"
    deadline = time.monotonic() + 5
    while not outcomes and time.monotonic() < deadline:
        time.sleep(0.02)
    assert outcomes and outcomes[0].complete and outcomes[0].error is None


class BrokenHook:
    """A hook with a bug of its own: the gateway must still answer in OpenAI's shape."""

    async def before(self, ex: Exchange) -> None:
        raise ZeroDivisionError("a bug, not the client's fault")

    async def after(self, ex: Exchange) -> None:
        return None


def test_unexpected_fault_is_a_json_500_and_server_keeps_serving(upstream: FakeUpstream) -> None:
    proxy = ProxyServer(
        {"OPENAI_BASE_URL": upstream.url, "OPENAI_API_KEY": "sk-real-1", "FORWARD_KEY": "fk-test"}
    )
    app: Any = proxy.server.config.app
    gateway: Any = getattr(app, "app", app)
    hooks = gateway.forwarder.hooks
    gateway.forwarder.hooks = (*hooks, BrokenHook())
    proxy.start()
    try:
        headers = {"authorization": "Bearer fk-test"}
        response = httpx.post(proxy.url + "/v1/chat/completions", json={}, headers=headers)
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/json"
        error = response.json()["error"]
        assert error["type"] == "server_error" and "ZeroDivisionError" in error["message"]
        assert "sk-real-1" not in response.text and upstream.requests == []
        gateway.forwarder.hooks = hooks
        assert httpx.post(proxy.url + "/v1/chat/completions", json={}, headers=headers).is_success
    finally:
        proxy.stop()
