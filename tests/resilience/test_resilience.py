"""Retries, backoff, Retry-After and key rotation, end to end through the real proxy.

The client is the official SDK with its own retries off (`max_retries=0`), so every
retry counted at the fake upstream is the proxy's.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from ai_forward.app import Gateway
from ai_forward.exchange import Exchange
from tests.fakes import FakeUpstream, ProxyServer, free_port
from tests.resilience.fakes import by_key, closing, failing

Factory = Callable[..., ProxyServer]
FAST = {"RETRY_BACKOFF": "0.05", "RETRY_BACKOFF_MAX": "0.1"}
MESSAGES: Any = [{"role": "user", "content": "hi"}]


def sdk(proxy: ProxyServer, key: str = "fk") -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key=key, max_retries=0)


def gateway(
    upstream: FakeUpstream, factory: Factory, keys: str = "sk-1", **env: Any
) -> ProxyServer:
    settings = {"OPENAI_BASE_URL": upstream.url, "OPENAI_API_KEY": keys, "FORWARD_KEY": "fk"}
    return factory(**{**settings, **FAST, **env})


def keys_seen(upstream: FakeUpstream) -> list[str]:
    return [r.headers["authorization"].removeprefix("Bearer ") for r in upstream.requests]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_failed_attempts_are_retried_until_one_succeeds(
    upstream: FakeUpstream, proxy_factory: Factory, status: int
) -> None:
    upstream.handler = failing(2, status)
    proxy = gateway(upstream, proxy_factory)
    raw = sdk(proxy).chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "Hello!"
    assert raw.headers["x-aifd-attempts"] == "3"
    assert len(upstream.requests) == 3
    assert {r.body for r in upstream.requests} == {upstream.requests[0].body}
    assert keys_seen(upstream) == ["sk-1"] * 3


def test_one_attempt_carries_no_attempts_header(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    raw = sdk(gateway(upstream, proxy_factory)).models.with_raw_response.list()
    assert "x-aifd-attempts" not in raw.headers
    assert len(upstream.requests) == 1


def test_when_retries_run_out_the_last_upstream_answer_is_relayed(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = failing(-1, 503)
    with pytest.raises(openai.InternalServerError) as info:
        sdk(gateway(upstream, proxy_factory)).chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.status_code == 503
    assert "upstream says 503" in str(info.value)
    assert info.value.response.headers["x-aifd-attempts"] == "3"
    assert len(upstream.requests) == 3


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_other_client_errors_are_never_retried(
    upstream: FakeUpstream, proxy_factory: Factory, status: int
) -> None:
    upstream.handler = failing(-1, status)
    response = httpx.post(
        gateway(upstream, proxy_factory, keys="sk-1,sk-2").url + "/v1/chat/completions",
        json={"model": "m"},
        headers={"authorization": "Bearer fk"},
    )
    assert response.status_code == status
    assert "x-aifd-attempts" not in response.headers
    assert len(upstream.requests) == 1


def test_retries_zero_turns_retrying_off(upstream: FakeUpstream, proxy_factory: Factory) -> None:
    upstream.handler = failing(-1, 500)
    proxy = gateway(upstream, proxy_factory, keys="sk-1,sk-2", RETRIES="0")
    with pytest.raises(openai.InternalServerError):
        sdk(proxy).models.list()
    upstream.handler = failing(-1, 429)
    with pytest.raises(openai.RateLimitError):
        sdk(proxy).models.list()
    upstream.handler = closing(1)
    # A POST: the client re-sends only an idempotent request once when a pooled connection
    # turns out to be closed, which is a transport detail, not a retry of an answer.
    with pytest.raises(openai.APIStatusError) as info:
        sdk(proxy).chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.status_code == 502
    assert len(upstream.requests) == 3


def test_backoff_grows_with_full_jitter_and_stays_under_its_cap(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = failing(4, 500)
    proxy = gateway(
        upstream, proxy_factory, RETRIES="4", RETRY_BACKOFF="0.1", RETRY_BACKOFF_MAX="0.25"
    )
    assert httpx.get(proxy.url + "/v1/models", headers={"authorization": "Bearer fk"}).is_success
    at = [r.at for r in upstream.requests]
    gaps = [b - a for a, b in itertools.pairwise(at)]
    assert len(gaps) == 4
    for gap, ceiling in zip(gaps, [0.1, 0.2, 0.25, 0.25], strict=True):
        assert 0 <= gap <= ceiling + 0.2, gaps


def test_retry_after_is_waited_out(upstream: FakeUpstream, proxy_factory: Factory) -> None:
    upstream.handler = failing(1, 429, headers={"retry-after": "1"})
    proxy = gateway(upstream, proxy_factory)
    assert sdk(proxy).models.list() is not None
    first, second = upstream.requests
    assert 1.0 <= second.at - first.at < 1.5


def test_retry_after_ms_is_waited_out(upstream: FakeUpstream, proxy_factory: Factory) -> None:
    upstream.handler = failing(1, 503, headers={"retry-after-ms": "400", "retry-after": "9"})
    proxy = gateway(upstream, proxy_factory)
    assert sdk(proxy).models.list() is not None
    first, second = upstream.requests
    assert 0.4 <= second.at - first.at < 0.9


def test_retry_after_beyond_the_cap_goes_back_to_the_client_at_once(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = failing(-1, 429, headers={"retry-after": "120"})
    proxy = gateway(upstream, proxy_factory, RETRY_AFTER_MAX="5")
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as info:
        sdk(proxy).models.list()
    assert time.monotonic() - started < 1.0
    assert info.value.response.headers["retry-after"] == "120"
    assert len(upstream.requests) == 1


def test_connection_closed_by_upstream_is_retried(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = closing(1)
    raw = sdk(gateway(upstream, proxy_factory)).chat.completions.with_raw_response.create(
        model="m", messages=MESSAGES
    )
    assert raw.parse().choices[0].message.content == "Hello!"
    assert raw.headers["x-aifd-attempts"] == "2"
    assert len(upstream.requests) == 2


def test_unreachable_upstream_gives_up_with_502_saying_how_often(
    proxy_factory: Factory,
) -> None:
    proxy = proxy_factory(OPENAI_BASE_URL=f"http://127.0.0.1:{free_port()}", **FAST)
    response = httpx.get(proxy.url + "/v1/models")
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "upstream_unreachable"
    assert "gave up after 3 attempts" in error["message"]
    assert response.headers["x-aifd-attempts"] == "3"


def test_429_moves_the_retry_to_the_next_key_without_waiting(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = by_key({"sk-1": 429}, headers={"retry-after": "20"})
    proxy = gateway(upstream, proxy_factory, keys="sk-1,sk-2,sk-3")
    started = time.monotonic()
    raw = sdk(proxy).models.with_raw_response.list()
    assert time.monotonic() - started < 1.0
    assert raw.headers["x-aifd-attempts"] == "2"
    assert keys_seen(upstream) == ["sk-1", "sk-2"]


def test_401_key_cools_down_then_comes_back(upstream: FakeUpstream, proxy_factory: Factory) -> None:
    upstream.handler = by_key({"sk-bad": 401})
    proxy = gateway(upstream, proxy_factory, keys="sk-bad,sk-good", KEY_COOLDOWN="1")
    for _ in range(4):
        assert sdk(proxy).models.list() is not None
    assert keys_seen(upstream) == ["sk-bad", "sk-good", "sk-good", "sk-good", "sk-good"]
    time.sleep(1.1)
    sdk(proxy).models.list()
    sdk(proxy).models.list()
    assert keys_seen(upstream)[5:] == ["sk-bad", "sk-good", "sk-good"]


def test_repeated_429_cools_a_key_down(upstream: FakeUpstream, proxy_factory: Factory) -> None:
    upstream.handler = by_key({"sk-a": 429})
    proxy = gateway(upstream, proxy_factory, keys="sk-a,sk-b")
    for _ in range(4):
        sdk(proxy).models.list()
    # A first 429 only moves the retry on; the second in a row cools sk-a down.
    assert keys_seen(upstream) == ["sk-a", "sk-b", "sk-a", "sk-b", "sk-b", "sk-b"]


def test_401_with_a_single_key_is_relayed_not_retried(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    upstream.handler = failing(-1, 401)
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway(upstream, proxy_factory)).models.list()
    assert len(upstream.requests) == 1


def test_clients_own_key_is_retried_on_5xx_but_never_swapped(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    proxy = gateway(upstream, proxy_factory, keys="sk-1,sk-2")
    upstream.handler = failing(-1, 401)
    with pytest.raises(openai.AuthenticationError):
        sdk(proxy, key="sk-clients-own").models.list()
    upstream.handler = failing(1, 502)
    assert sdk(proxy, key="sk-clients-own").models.list() is not None
    assert keys_seen(upstream) == ["sk-clients-own"] * 3


def test_access_log_says_why_it_retried(
    upstream: FakeUpstream, proxy_factory: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    statuses = iter([429, 503])

    async def handler(request, rec):  # type: ignore[no-untyped-def]
        status = next(statuses, None)
        if status is None:
            return await failing(0, 200)(request, rec)
        return await failing(1, status)(request, rec)

    upstream.handler = handler
    sdk(gateway(upstream, proxy_factory)).models.list()
    deadline = time.monotonic() + 2
    err = ""
    while "attempts=" not in err and time.monotonic() < deadline:
        time.sleep(0.1)
        err += capsys.readouterr().err
    assert "-> 200" in err and "attempts=3 (429, 503)" in err
    assert "sk-1" not in err


class CountingHook:
    """Stands in for rate limits and chat logs: what do hooks see of a retried request?"""

    def __init__(self) -> None:
        self.before_calls = 0
        self.seen: list[tuple[int, int, list[str]]] = []

    async def before(self, ex: Exchange) -> None:
        self.before_calls += 1

    async def after(self, ex: Exchange) -> None:
        self.seen.append((ex.outcome.status, ex.outcome.attempts, list(ex.outcome.retried)))


def test_a_retried_request_passes_the_hooks_once(upstream: FakeUpstream) -> None:
    upstream.handler = failing(2, 503)
    proxy = ProxyServer({"OPENAI_BASE_URL": upstream.url, **FAST})
    app = Gateway(proxy.settings)
    hook = CountingHook()
    app.forwarder.hooks += (hook,)
    proxy.server.config.app = app
    proxy.start()
    try:
        assert httpx.get(proxy.url + "/v1/models").status_code == 200
    finally:
        proxy.stop()
    assert len(upstream.requests) == 3
    assert hook.before_calls == 1
    assert hook.seen == [(200, 3, ["503", "503"])]
