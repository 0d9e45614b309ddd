"""Who may read `/metrics`, and what a single process counts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
from aiohttp import web

from ai_forward.ops.exposition import MetricsApp
from ai_forward.ops.settings import OpsSettings
from ai_forward.ops.tally import Tally
from ai_forward.ops.workers import PUBLISH_EVERY, WorkerFigures
from ai_forward.signals import Signals
from tests.fakes import FakeUpstream, ProxyServer, Recorded, chunk, sse, stream_response
from tests.ops.scrape import scrape, total, value


def test_metrics_token_is_required_when_set(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    proxy = proxy_factory(OPENAI_BASE_URL=upstream.url, METRICS="true", METRICS_TOKEN="m-token-123")
    refused = httpx.get(proxy.url + "/metrics", headers={"authorization": "Bearer wrong"})
    assert refused.status_code == 401
    assert "METRICS_TOKEN" in refused.json()["error"]["message"]
    assert refused.json()["error"]["type"] == "authentication_error"
    samples = scrape(proxy.url, authorization="Bearer m-token-123")
    assert value(samples, "aifd_requests_in_flight") == 0
    assert upstream.requests == []  # /metrics is the gateway's, never forwarded


def test_metrics_refuse_non_loopback_clients_unless_public() -> None:
    def call(settings: OpsSettings) -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        scope = {"type": "http", "method": "GET", "headers": [], "client": ("10.0.0.7", 5000)}
        app = MetricsApp(settings, WorkerFigures(Tally(Signals()), None))
        asyncio.run(app(scope, receive, send))
        return sent[0]["status"], sent[1]["body"]

    status, body = call(OpsSettings())
    assert status == 403
    assert "METRICS_PUBLIC" in orjson.loads(body)["error"]["message"]
    assert call(OpsSettings(metrics_public=True))[0] == 200


def test_one_process_counts_refusals_by_reason_and_answers_with_a_request_id(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real-1",
        FORWARD_KEY="fk-test",
        IP_BLACKLIST="10.9.9.9",
        REQ_RATE_LIMIT="2/minute",
        METRICS="true",
    )
    sdk = openai.OpenAI(base_url=proxy.url + "/v1", api_key="fk-test", max_retries=0)
    sdk.models.list()
    sdk.models.list()
    try:
        sdk.models.list()
    except openai.RateLimitError as exc:
        assert len(exc.response.headers["x-request-id"]) == 16
    else:
        raise AssertionError("the third request should have been limited")
    samples = scrape(proxy.url)
    assert value(samples, "aifd_refusals_total", reason="rate_limit") == 1
    limited = {
        "route": "openai",
        "provider": "passthrough",
        "model": "-",
        "endpoint": "/v1/models",
        "status": "429",
        "key_kind": "forward",
    }
    assert value(samples, "aifd_requests_total", **limited) == 1
    assert value(samples, "aifd_requests_total", **{**limited, "status": "200"}) == 2
    assert value(samples, "aifd_upstream_attempts_total", route="openai") == 2


def test_a_broken_metrics_directory_never_stops_forwarding(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], tmp_path: Path
) -> None:
    not_a_directory = tmp_path / "metrics"
    not_a_directory.write_text("a file where the workers' directory should be")
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real-1",
        FORWARD_KEY="fk-test",
        METRICS="true",
        AIFD_METRICS_DIR=str(not_a_directory),
    )
    sdk = openai.OpenAI(base_url=proxy.url + "/v1", api_key="fk-test", max_retries=0)
    sdk.models.list()
    time.sleep(PUBLISH_EVERY + 0.3)  # at least one publication has failed by now
    sdk.models.list()
    samples = scrape(proxy.url)
    assert total(samples, "aifd_requests_total") == 2
    assert not_a_directory.read_text().startswith("a file")


def test_a_stream_that_asked_for_usage_counts_the_tokens_its_last_event_reports(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}

    async def streams_with_usage(request: web.Request, rec: Recorded) -> web.StreamResponse:
        # Each event `"usage":null`, as OpenAI sends them once asked.
        events = [{**chunk(text), "usage": None} for text in ("Hel", "lo!")]
        return await stream_response(request, sse(*events, {"choices": [], "usage": usage}))

    upstream.handler = streams_with_usage
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real-1",
        FORWARD_KEY="fk-test",
        METRICS="true",
    )
    sdk = openai.OpenAI(base_url=proxy.url + "/v1", api_key="fk-test", max_retries=0)
    for options in ({"include_usage": True}, None):
        stream = sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options=options,
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello!"
    samples = scrape(proxy.url)
    tokens = {"model": "gpt-4o-mini", "user": "-"}
    # Only the stream that asked is read: reading the others would cost each of their chunks.
    assert value(samples, "aifd_tokens_total", direction="in", **tokens) == 7
    assert value(samples, "aifd_tokens_total", direction="out", **tokens) == 3
    assert value(samples, "aifd_streams_in_flight") == 0
    assert value(samples, "aifd_requests_in_flight") == 0
