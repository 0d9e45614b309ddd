"""Limits in a Redis Cluster and behind a Sentinel: the one-script counting works there too,
exact across gateway instances."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.fakes import FakeUpstream, ProxyServer
from tests.ratelimit.fakes import usage_reporting

Factory = Callable[..., ProxyServer]
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}


def post(proxy: ProxyServer, key: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    return httpx.post(proxy.url + "/v1/chat/completions", json=BODY, headers=headers, timeout=10)


@pytest.mark.parametrize("backend", ["redis_cluster", "redis_sentinel"])
def test_two_instances_share_exact_limits_and_settle_tokens(
    upstream: FakeUpstream, proxy_factory: Factory, request: pytest.FixtureRequest, backend: str
) -> None:
    url = request.getfixturevalue(backend).url
    upstream.handler = usage_reporting(prompt_tokens=3, completion_tokens=2)
    # A key of its own per run: the session-wide Redis keeps counters between tests.
    key = f"fk-{backend}-{time.monotonic_ns()}"
    env = {
        "OPENAI_BASE_URL": upstream.url,
        "OPENAI_API_KEY": "sk-real",
        "FORWARD_KEY": key,
        "RATE_LIMIT_BACKEND": url,
        "RATE_LIMIT_FAIL": "closed",  # a storage error would be a 503, never a silent pass
        "REQ_RATE_LIMIT": "/v1/chat/completions=5/minute",
        "TPM_LIMIT": "1000/minute",
    }
    first, second = proxy_factory(**env), proxy_factory(**env)
    answers = [post((first, second)[i % 2], key) for i in range(7)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers[:5]] == [
        "4",
        "3",
        "2",
        "1",
        "0",
    ]
    assert "REQ_RATE_LIMIT" in answers[-1].json()["error"]["message"]
    # Each request reserved 1 + 20 tokens and settled to the 5 used: 5 x 5 = 25 counted, so
    # the fifth reply saw 1000 - (4 x 5 + 21) left.
    assert answers[4].headers["x-ratelimit-remaining-tokens"] == "959"
    assert len(upstream.requests) == 5
