"""Timeouts, stalls, cut streams, client disconnects and SIGTERM: nothing hangs, nothing is lost
silently."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import openai
import pytest

from tests.fakes import FakeUpstream, ProxyServer, chunk, sse, stream_response
from tests.processes import aifd_instance
from tests.resilience.fakes import failing, slow_stream, stalling, stalling_mid_stream

Factory = Callable[..., ProxyServer]
AUTH = {"authorization": "Bearer fk"}
MESSAGES: Any = [{"role": "user", "content": "hi"}]
# `aifd run` subprocesses must import this checkout, not whichever one pip installed.
HERE = {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def gateway(upstream: FakeUpstream, factory: Factory, **env: Any) -> ProxyServer:
    settings = {"OPENAI_BASE_URL": upstream.url, "OPENAI_API_KEY": "sk-1", "FORWARD_KEY": "fk"}
    return factory(**{**settings, "RETRY_BACKOFF": "0.05", **env})


def sdk(proxy: ProxyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="fk", max_retries=0)


def read_stream(proxy: ProxyServer) -> str:
    with httpx.stream(
        "POST",
        proxy.url + "/v1/chat/completions",
        json={"model": "m", "stream": True},
        headers=AUTH,
        timeout=10,
    ) as response:
        assert response.status_code == 200
        return b"".join(response.iter_bytes()).decode()


def test_silent_upstream_is_504_naming_the_setting(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = stalling(-1)
    proxy = gateway(upstream, proxy_factory, FIRST_BYTE_TIMEOUT="0.3", RETRIES="0")
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        sdk(proxy).chat.completions.create(model="m", messages=MESSAGES)
    assert time.monotonic() - started < 1.5
    assert info.value.status_code == 504
    error = info.value.response.json()["error"]
    assert error["code"] == "upstream_timeout"
    assert "FIRST_BYTE_TIMEOUT" in error["message"]
    assert upstream.last.disconnected.wait(1.0)


def test_stall_before_headers_is_retried(upstream: FakeUpstream, proxy_factory: Factory) -> None:
    upstream.handler = stalling(1)
    proxy = gateway(upstream, proxy_factory, FIRST_BYTE_TIMEOUT="0.3")
    raw = sdk(proxy).chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "Hello!"
    assert raw.headers["x-aifd-attempts"] == "2"
    assert upstream.requests[0].disconnected.wait(1.0)


def test_connect_timeout_is_504_naming_the_setting(proxy_factory: Factory) -> None:
    # A listener that never accepts: once its backlog is full, connecting hangs.
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.connect(("127.0.0.1", port))
        proxy = proxy_factory(
            OPENAI_BASE_URL=f"http://127.0.0.1:{port}", CONNECT_TIMEOUT="0.3", RETRIES="0"
        )
        started = time.monotonic()
        response = httpx.get(proxy.url + "/v1/models", timeout=10)
        assert time.monotonic() - started < 1.5
    assert response.status_code == 504
    assert "CONNECT_TIMEOUT" in response.json()["error"]["message"]


def test_stall_mid_stream_ends_with_error_event_and_is_not_retried(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = stalling_mid_stream(events_first=2)
    proxy = gateway(upstream, proxy_factory, IDLE_TIMEOUT="0.3")
    started = time.monotonic()
    text = read_stream(proxy)
    assert time.monotonic() - started < 1.5
    assert "part0" in text and "part1" in text
    assert text.rstrip().endswith('"code":"stream_broken"}}')
    assert "stalled for 0.3s" in text
    assert upstream.last.disconnected.wait(1.0)
    assert len(upstream.requests) == 1


def test_stream_cut_after_bytes_went_out_is_not_retried(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    async def handler(request, rec):  # type: ignore[no-untyped-def]
        return await stream_response(request, sse(chunk("a"), chunk("b"), chunk("c")), cut_after=2)

    upstream.handler = handler
    text = read_stream(gateway(upstream, proxy_factory))
    assert text.count('"content":') == 2
    assert "connection broke" in text and text.rstrip().endswith('"code":"stream_broken"}}')
    assert len(upstream.requests) == 1


def test_timeouts_bound_silence_not_the_length_of_a_stream(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = slow_stream(events=6, delay=0.2)
    proxy = gateway(upstream, proxy_factory, FIRST_BYTE_TIMEOUT="0.3", IDLE_TIMEOUT="0.5")
    stream = sdk(proxy).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    words = "".join(part.choices[0].delta.content or "" for part in stream)
    assert words == "w0 w1 w2 w3 w4 w5 "


def disconnect_after(proxy: ProxyServer, seconds: float, stream: bool) -> float:
    """Send a chat request, hang up after `seconds` (or after the first line); when we did."""

    async def main() -> float:
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                proxy.url + "/v1/chat/completions",
                json={"model": "m", "stream": stream},
                headers=AUTH,
                timeout=aiohttp.ClientTimeout(total=seconds),
            )
            await response.content.readline()
            response.close()
            return time.monotonic()

    try:
        return asyncio.run(main())
    except TimeoutError:
        return time.monotonic()


def test_client_gone_mid_stream_closes_upstream_within_a_second(
    upstream: FakeUpstream, proxy: ProxyServer
) -> None:
    upstream.handler = slow_stream(events=100, delay=0.1)
    gone = disconnect_after(proxy, 10, stream=True)
    assert upstream.last.disconnected.wait(1.0)
    assert time.monotonic() - gone < 1.0
    assert httpx.get(proxy.url + "/healthz").status_code == 200


def test_client_gone_while_upstream_thinks_closes_upstream_within_a_second(
    upstream: FakeUpstream, proxy: ProxyServer
) -> None:
    upstream.handler = stalling(-1)
    disconnect_after(proxy, 0.5, stream=False)
    assert upstream.last.disconnected.wait(1.0)


def test_client_gone_during_backoff_stops_the_retries(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = failing(-1, 503, headers={"retry-after": "1.5"})
    proxy = gateway(upstream, proxy_factory)
    disconnect_after(proxy, 0.5, stream=False)
    time.sleep(1.7)
    assert len(upstream.requests) == 1


@pytest.fixture
def live_upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    fake.handler = slow_stream(events=8, delay=0.25)
    yield fake
    fake.stop()


async def open_streams(url: str, count: int) -> tuple[aiohttp.ClientSession, list[Any]]:
    session = aiohttp.ClientSession()
    responses = []
    for _ in range(count):
        response = await session.post(
            url + "/v1/chat/completions", json={"model": "m", "stream": True}, headers=AUTH
        )
        assert response.status == 200
        await response.content.readline()
        responses.append(response)
    return session, responses


def test_sigterm_lets_live_streams_finish_and_exits_0(
    live_upstream: FakeUpstream, tmp_path: Path
) -> None:
    env = {"OPENAI_BASE_URL": live_upstream.url, "OPENAI_API_KEY": "sk-1", "FORWARD_KEY": "fk"}
    env.update(HERE)
    with aifd_instance(env, tmp_path) as (url, proc):

        async def main() -> list[str]:
            session, responses = await open_streams(url, 3)
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(url + "/healthz")  # no longer accepting
            texts = [(await r.read()).decode() for r in responses]
            await session.close()
            return texts

        texts = asyncio.run(main())
        assert proc.wait(10) == 0
    for text in texts:
        assert text.rstrip().endswith("data: [DONE]")
        assert text.count('"content":') == 7  # the first of 8 was read before SIGTERM
        assert "w7" in text


def test_sigterm_closes_after_the_grace_even_with_requests_open(
    live_upstream: FakeUpstream, tmp_path: Path
) -> None:
    streaming = slow_stream(events=100, delay=0.1)
    thinking = stalling(-1)

    async def handler(request, rec):  # type: ignore[no-untyped-def]
        return await (streaming if rec.json().get("stream") else thinking)(request, rec)

    live_upstream.handler = handler
    env = {
        "OPENAI_BASE_URL": live_upstream.url,
        "OPENAI_API_KEY": "sk-1",
        "FORWARD_KEY": "fk",
        "SHUTDOWN_GRACE": "0.5",
        **HERE,
    }
    with aifd_instance(env, tmp_path) as (url, proc):

        async def main() -> tuple[str, int, Any]:
            session, responses = await open_streams(url, 1)
            waiting = asyncio.ensure_future(
                session.post(url + "/v1/chat/completions", json={"model": "m"}, headers=AUTH)
            )
            await asyncio.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            text = (await responses[0].read()).decode()
            answer = await waiting
            body = await answer.json()
            await session.close()
            return text, answer.status, body

        started = time.monotonic()
        text, status, body = asyncio.run(main())
        assert proc.wait(5) == 0
        assert time.monotonic() - started < 3
        output = proc.stdout.read() if proc.stdout else ""
    assert text.rstrip().endswith('"code":"stream_broken"}}')
    assert "shutting down" in text
    assert status == 503 and "shutting down" in body["error"]["message"]
    assert all(r.disconnected.wait(1.0) for r in live_upstream.requests)
    assert "Traceback" not in output and "cut short by shutdown" in output
