"""`/metrics` of `aifd run --workers 2`: every worker's requests, counted exactly."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai

from tests.fakes import FakeUpstream
from tests.ops.scrape import Samples, scrape_until, total, value
from tests.processes import aifd_instance

CHAT = {"route": "openai", "provider": "passthrough", "model": "gpt-4o-mini"}


def test_two_workers_count_every_request_exactly(upstream: FakeUpstream, tmp_path: Path) -> None:
    env = {
        "OPENAI_BASE_URL": upstream.url,
        "OPENAI_API_KEY": "sk-real-1",
        "FORWARD_KEY": "fk-test",
        "MAX_BODY_SIZE": "20000",
        "METRICS": "true",
    }
    with aifd_instance(env, tmp_path, workers=2) as (url, _):
        for _ in range(6):
            # A client per request: a new connection each time, so both workers serve some.
            sdk = openai.OpenAI(base_url=url + "/v1", api_key="fk-test", max_retries=0)
            sdk.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        for _ in range(2):
            sdk = openai.OpenAI(base_url=url + "/v1", api_key="fk-test", max_retries=0)
            stream = sdk.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            assert (
                "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello!"
            )
        openai.OpenAI(base_url=url + "/v1", api_key="fk-test", max_retries=0).models.list()
        too_big = httpx.post(url + "/v1/chat/completions", content=b"x" * 30000)
        assert too_big.status_code == 413
        assert len(too_big.headers["x-request-id"]) == 16

        def everything_published(samples: Samples) -> bool:
            return (
                total(samples, "aifd_request_duration_seconds_count") >= 9
                and total(samples, "aifd_refusals_total") >= 1
            )

        samples = scrape_until(url, everything_published, seconds=20)

    chat = {**CHAT, "endpoint": "/v1/chat/completions", "status": "200", "key_kind": "forward"}
    assert value(samples, "aifd_requests_total", **chat) == 8
    models = {
        **CHAT,
        "model": "-",
        "endpoint": "/v1/models",
        "status": "200",
        "key_kind": "forward",
    }
    assert value(samples, "aifd_requests_total", **models) == 1
    assert total(samples, "aifd_requests_total") == 9
    assert value(samples, "aifd_refusals_total", reason="body_size") == 1
    assert total(samples, "aifd_refusals_total") == 1
    assert value(samples, "aifd_upstream_attempts_total", route="openai") == 9
    assert total(samples, "aifd_upstream_retries_total") == 0
    # The fake upstream reports 5 tokens in and 2 out per completion; the streams report none.
    tokens = {"model": "gpt-4o-mini", "user": "-"}
    assert value(samples, "aifd_tokens_total", direction="in", **tokens) == 30
    assert value(samples, "aifd_tokens_total", direction="out", **tokens) == 12
    for name in ("request_duration", "gateway_added", "upstream_first_byte"):
        count = value(samples, f"aifd_{name}_seconds_count", route="openai")
        inf = value(samples, f"aifd_{name}_seconds_bucket", route="openai", le="+Inf")
        assert count == inf == 9
    assert value(samples, "aifd_streams_in_flight") == 0
