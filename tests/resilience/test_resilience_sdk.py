"""The gateway's retries and the SDK's own retries (default `max_retries=2`) do not multiply."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.fakes import FakeUpstream, ProxyServer
from tests.resilience.fakes import failing

Factory = Callable[..., ProxyServer]
MESSAGES: Any = [{"role": "user", "content": "hi"}]


def sdk(proxy: ProxyServer) -> openai.OpenAI:
    """The SDK as users run it: its own retries on (two, by default)."""
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="fk")


def gateway(upstream: FakeUpstream, factory: Factory, retries: str = "2") -> ProxyServer:
    return factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-1",
        FORWARD_KEY="fk",
        RETRIES=retries,
        RETRY_BACKOFF="0.05",
        RETRY_BACKOFF_MAX="0.1",
    )


def test_a_failing_chat_reaches_the_upstream_retries_plus_one_times(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = failing(-1, 500)
    with pytest.raises(openai.InternalServerError) as caught:
        sdk(gateway(upstream, proxy_factory)).chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert caught.value.response.headers["x-aifd-attempts"] == "3"
    assert len(upstream.requests) == 3


def test_a_failing_multipart_upload_reaches_the_upstream_retries_plus_one_times(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = failing(-1, 500)
    audio = ("speech.mp3", io.BytesIO(b"ID3" + b"\0" * 2000), "audio/mpeg")
    with pytest.raises(openai.InternalServerError):
        sdk(gateway(upstream, proxy_factory)).audio.transcriptions.create(
            model="whisper-1", file=audio
        )
    assert len(upstream.requests) == 3
    assert all(r.path == "/v1/audio/transcriptions" for r in upstream.requests)
    assert len({r.body for r in upstream.requests}) == 1


def test_upstreams_should_retry_false_means_one_attempt_in_all(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = failing(-1, 503, headers={"x-should-retry": "false"})
    with pytest.raises(openai.InternalServerError) as caught:
        sdk(gateway(upstream, proxy_factory)).chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert "x-aifd-attempts" not in caught.value.response.headers
    assert len(upstream.requests) == 1


def test_gateway_that_retried_overrides_upstreams_should_retry_true(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = failing(-1, 502, headers={"x-should-retry": "true"})
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(gateway(upstream, proxy_factory)).models.list()
    assert caught.value.response.headers.get_list("x-should-retry") == ["false"]
    assert len(upstream.requests) == 3


def test_upstreams_should_retry_true_reaches_the_client_when_the_gateway_did_not_retry(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    # A 409 is never retried by the gateway; the upstream asks the client to retry it.
    upstream.handler = failing(1, 409, headers={"x-should-retry": "true"})
    proxy = gateway(upstream, proxy_factory)
    reply = sdk(proxy).chat.completions.create(model="m", messages=MESSAGES)
    assert reply.choices[0].message.content == "Hello!"
    assert len(upstream.requests) == 2  # the SDK's retry, not the gateway's
