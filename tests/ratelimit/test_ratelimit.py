"""Request and token limits end to end: the official SDK through the real proxy (memory storage)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import orjson
import pytest
from aiohttp import web

from ai_forward.exchange import Exchange, Principal
from tests.fakes import FakeUpstream, ProxyServer, Recorded, chunk, sse, stream_response
from tests.ratelimit.fakes import no_usage, refused, usage_reporting

Factory = Callable[..., ProxyServer]
HI = [{"role": "user", "content": "hi"}]  # "hi": one token of prompt by the estimate


def sdk(proxy: ProxyServer, key: str = "fk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key=key, max_retries=0)


def chat(proxy: ProxyServer, key: str = "fk-test", **extra: Any) -> httpx.Response:
    """A chat completion through the SDK; the raw response, for its headers."""
    raw = sdk(proxy, key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HI, **extra
    )
    return raw.http_response


def limited(upstream: FakeUpstream, proxy_factory: Factory, **env: Any) -> ProxyServer:
    return proxy_factory(
        OPENAI_BASE_URL=upstream.url, OPENAI_API_KEY="sk-real", FORWARD_KEY="fk-test,fk-b", **env
    )


def settle() -> None:
    """Token counts settle just after the reply ends; give that a moment."""
    time.sleep(0.15)


def test_over_the_limit_the_sdk_raises_rate_limit_error_naming_the_limit(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    proxy = limited(upstream, proxy_factory, REQ_RATE_LIMIT="/v1/chat/completions=2/minute")
    first = chat(proxy)
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert chat(proxy).headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as info:
        chat(proxy)
    response = info.value.response
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["type"] == "rate_limit_exceeded"
    assert "REQ_RATE_LIMIT" in error["message"] and "2 requests per 1m0s" in error["message"]
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert int(response.headers["retry-after-ms"]) > 0
    assert response.headers["x-ratelimit-limit-requests"] == "2"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert response.headers["x-ratelimit-reset-requests"].endswith("s")
    assert len(upstream.requests) == 2


def test_other_paths_are_not_limited_by_a_path_rule(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    proxy = limited(upstream, proxy_factory, REQ_RATE_LIMIT="/v1/chat/completions=1/minute")
    chat(proxy)
    for _ in range(3):
        models = sdk(proxy).models.with_raw_response.list().http_response
        assert models.status_code == 200
        assert "x-ratelimit-limit-requests" not in models.headers


def test_our_headers_replace_the_upstreams(upstream: FakeUpstream, proxy_factory: Factory) -> None:
    proxy = limited(upstream, proxy_factory, REQ_RATE_LIMIT="5/minute")
    response = httpx.get(proxy.url + "/v1/models", headers={"authorization": "Bearer fk-test"})
    assert response.headers.get_list("x-ratelimit-remaining-requests") == ["4"]
    assert response.headers.get_list("x-ratelimit-limit-requests") == ["5"]


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window", "sliding-window-counter"])
def test_each_strategy_admits_exactly_the_limit_then_recovers(
    upstream: FakeUpstream, proxy_factory: Factory, strategy: str
) -> None:
    proxy = limited(
        upstream, proxy_factory, REQ_RATE_LIMIT="3/2seconds", RATE_LIMIT_STRATEGY=strategy
    )
    time.sleep(2 - time.time() % 2)  # sliding windows are aligned to the clock: start one afresh
    statuses = [
        httpx.get(proxy.url + "/v1/models", headers={"authorization": "Bearer fk-test"}).status_code
        for _ in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]
    time.sleep(2.1)
    again = httpx.get(proxy.url + "/v1/models", headers={"authorization": "Bearer fk-test"})
    assert again.status_code == 200


def test_clients_are_counted_apart_by_key_or_ip(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    proxy = limited(upstream, proxy_factory, REQ_RATE_LIMIT="/v1/chat/completions=1/minute")
    chat(proxy, "fk-test")
    with pytest.raises(openai.RateLimitError):
        chat(proxy, "fk-test")
    assert chat(proxy, "fk-b").status_code == 200
    assert chat(proxy, "sk-clients-own").status_code == 200
    body = {"model": "m", "messages": HI}
    keyless = [httpx.post(proxy.url + "/v1/chat/completions", json=body) for _ in range(2)]
    assert [r.status_code for r in keyless] == [200, 429]


def test_global_limit_counts_every_client_and_path(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    proxy = limited(upstream, proxy_factory, GLOBAL_RATE_LIMIT="3/minute")
    chat(proxy, "fk-test")
    chat(proxy, "fk-b")
    sdk(proxy, "sk-other").models.list()
    with pytest.raises(openai.RateLimitError) as info:
        chat(proxy, "sk-fourth")
    assert "GLOBAL_RATE_LIMIT" in info.value.message


def test_tokens_are_reserved_then_settled_to_reported_usage(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = usage_reporting(prompt_tokens=10, completion_tokens=20)
    proxy = limited(upstream, proxy_factory, TPM_LIMIT="100/minute")
    first = chat(proxy, max_tokens=50)  # reserves 1 + 50, then settles to 30
    assert first.headers["x-ratelimit-limit-tokens"] == "100"
    assert first.headers["x-ratelimit-remaining-tokens"] == "49"
    settle()
    second = chat(proxy, max_completion_tokens=60)  # 30 counted + 61 reserved
    assert second.headers["x-ratelimit-remaining-tokens"] == "9"
    settle()
    third = chat(proxy, max_tokens=38)  # 60 counted + 39 reserved
    assert third.headers["x-ratelimit-remaining-tokens"] == "1"
    settle()
    with pytest.raises(openai.RateLimitError) as info:
        chat(proxy, max_tokens=50)  # 90 counted + 51 > 100
    assert "TPM_LIMIT" in info.value.message
    headers = info.value.response.headers
    assert headers["x-ratelimit-limit-tokens"] == "100"
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    assert int(headers["retry-after"]) >= 1
    assert len(upstream.requests) == 3


def test_usage_above_the_estimate_is_charged(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = usage_reporting(prompt_tokens=40, completion_tokens=50)
    proxy = limited(upstream, proxy_factory, TPM_LIMIT="100/minute")
    chat(proxy, max_tokens=5)  # reserves 6, settles to 90
    settle()
    with pytest.raises(openai.RateLimitError):
        chat(proxy, max_tokens=20)


def test_streamed_usage_settles_and_its_chunk_is_hidden_unless_asked(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = usage_reporting(prompt_tokens=5, completion_tokens=15)
    proxy = limited(upstream, proxy_factory, TPM_LIMIT="/v1/chat/completions=100/minute")
    client = sdk(proxy)
    chunks = list(
        client.chat.completions.create(model="m", messages=HI, max_tokens=50, stream=True)
    )
    assert upstream.last.json()["stream_options"] == {"include_usage": True}
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "wordwordword"
    settle()
    asked = list(
        client.chat.completions.create(
            model="m",
            messages=HI,
            max_tokens=50,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert asked[-1].usage is not None and asked[-1].usage.total_tokens == 20
    settle()
    # 20 + 20 settled: 60 left, so a request that may use 61 is refused and one of 60 is not.
    with pytest.raises(openai.RateLimitError):
        chat(proxy, max_tokens=60)
    assert chat(proxy, max_tokens=59).headers["x-ratelimit-remaining-tokens"] == "0"


def test_without_reported_usage_tokens_are_counted_locally(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = no_usage  # a 40-character reply: 10 tokens, plus 1 of prompt
    proxy = limited(upstream, proxy_factory, TPM_LIMIT="100/minute")
    chat(proxy, max_tokens=80)
    settle()
    assert chat(proxy, max_tokens=9).headers["x-ratelimit-remaining-tokens"] == "79"


def test_a_broken_stream_is_counted_from_what_arrived(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    async def cut(request: web.Request, rec: Recorded) -> web.StreamResponse:
        events = sse(chunk(role="assistant", content=""), *(chunk("word") for _ in range(9)))
        return await stream_response(request, events, cut_after=3)  # two words arrive

    upstream.handler = cut
    proxy = limited(upstream, proxy_factory, TPM_LIMIT="100/minute")
    body = {"model": "m", "messages": HI, "stream": True, "max_tokens": 50}
    response = httpx.post(
        proxy.url + "/v1/chat/completions", json=body, headers={"authorization": "Bearer fk-test"}
    )
    assert "stream_broken" in response.text
    settle()
    # 1 token of prompt + 2 of text settled; the next reservation is 1 + 9.
    assert chat(proxy, max_tokens=9).headers["x-ratelimit-remaining-tokens"] == "87"


def test_refused_requests_cost_no_tokens(upstream: FakeUpstream, proxy_factory: Factory) -> None:
    upstream.handler = refused
    proxy = limited(upstream, proxy_factory, TPM_LIMIT="100/minute")
    for _ in range(3):
        with pytest.raises(openai.BadRequestError):
            chat(proxy, max_tokens=90)
        settle()


def test_a_request_larger_than_the_limit_still_passes_alone(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = usage_reporting(prompt_tokens=1, completion_tokens=1)
    proxy = limited(upstream, proxy_factory, TPM_LIMIT="100/minute")
    assert chat(proxy).status_code == 200  # 1 + 1024 by default: reserves the whole limit
    settle()
    assert chat(proxy, max_tokens=90).headers["x-ratelimit-remaining-tokens"] == "7"


class SetPrincipal:
    """Stands in for the users feature: every request is user alice with her own limits."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    async def before(self, ex: Exchange) -> None:
        ex.principal = self.principal

    async def after(self, ex: Exchange) -> None:
        return None


def with_principal(proxy: ProxyServer, principal: Principal) -> ProxyServer:
    app: Any = proxy.server.config.app
    gateway = getattr(app, "app", app)
    gateway.forwarder.hooks = (SetPrincipal(principal), *gateway.forwarder.hooks)
    return proxy


def test_a_users_own_limits_replace_the_per_client_ones(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = usage_reporting(prompt_tokens=10, completion_tokens=10)
    proxy = with_principal(
        limited(upstream, proxy_factory, REQ_RATE_LIMIT="1/minute", TPM_LIMIT="10/minute"),
        Principal("alice", rpm=3, tpm=1000),
    )
    first = chat(proxy, "fk-test", max_tokens=100)
    assert first.headers["x-ratelimit-limit-requests"] == "3"
    assert first.headers["x-ratelimit-limit-tokens"] == "1000"
    chat(proxy, "fk-b", max_tokens=100)  # another key, the same user: one counter
    chat(proxy, "fk-test", max_tokens=100)
    with pytest.raises(openai.RateLimitError) as info:
        chat(proxy, "fk-b", max_tokens=100)
    assert "requests per minute of user alice" in info.value.message


def test_counters_hold_only_a_hash_of_the_key(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    proxy = limited(upstream, proxy_factory, REQ_RATE_LIMIT="5/minute", TPM_LIMIT="100/minute")
    chat(proxy, "sk-very-secret-client-key", max_tokens=5)
    app: Any = proxy.server.config.app
    gateway = getattr(app, "app", app)
    store = next(r for r in gateway.resources if type(r).__name__ == "LimitStore")
    counters = store.counters
    dumped = orjson.dumps([*counters.fixed, *counters.moving, *counters.sliding]).decode()
    assert "key:" in dumped
    assert "sk-very-secret" not in dumped
