"""Features together, end to end: retries x limits x chat logs, providers x TPM x usage, users."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chatlog.fakes import read_records, wait_records
from tests.fakes import FakeUpstream, ProxyServer
from tests.integration_fakes import (
    CHAT,
    HI,
    access_lines,
    all_features,
    fails_first,
    post,
    remaining,
)
from tests.providers.fakes import data
from tests.users.fakes import admin, create, sdk

Factory = Callable[..., ProxyServer]


def test_a_retried_request_counts_once_and_is_logged_once(
    upstream: FakeUpstream,
    providers: FakeUpstream,
    proxy_factory: Factory,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    upstream.handler = fails_first(500)
    proxy = proxy_factory(
        **all_features(upstream, providers, tmp_path, REQ_RATE_LIMIT=f"{CHAT}=4/minute")
    )
    printed: list[str] = []
    access_lines(capfd, printed, 0)  # start-up output
    first = post(proxy.url, "fk-test")
    assert first.status_code == 200, first.text
    assert len(upstream.requests) == 2  # one failure, one retry
    assert remaining(first, "requests") == 3
    records = wait_records(tmp_path / "logs", 1)
    assert len(records) == 1
    assert (records[0]["status"], records[0]["attempts"], records[0]["complete"]) == (200, 2, True)
    lines = access_lines(capfd, printed, 1)
    assert len(lines) == 1 and "-> 200" in lines[0] and "attempts=2" in lines[0]

    answers = [post(proxy.url, "fk-test") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [remaining(a, "requests") for a in answers[:3]] == [2, 1, 0]
    assert "rate limit reached" in answers[3].json()["error"]["message"]
    assert len(upstream.requests) == 5
    assert len(wait_records(tmp_path / "logs", 4)) == 4  # the refused request is no exchange
    assert len(access_lines(capfd, printed, 5)) == 5


def spend(proxy: ProxyServer, key: str, model: str, stream: bool) -> tuple[int, httpx.Response]:
    """One chat completion with `model`; the tokens its reply reported, and the response."""
    body: dict[str, Any] = {"model": model, "messages": HI}
    if stream:
        body["stream_options"] = {"include_usage": True}
    with httpx.stream(
        "POST",
        proxy.url + CHAT,
        json={**body, "stream": stream},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    ) as response:
        response.read()
    assert response.status_code == 200, response.text
    if not stream:
        return response.json()["usage"]["total_tokens"], response
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: {")]
    last = httpx.Response(200, content=events[-1]).json()
    return last["usage"]["total_tokens"], response


CASES = [
    ("claude-sonnet-4-5", False, 11 + 4),
    ("claude-sonnet-4-5", True, 572 + 89),
    ("gemini-2.0-flash", False, 6 + 3),
    ("gemini-2.0-flash", True, 9 + 5),
]


@pytest.mark.parametrize(("model", "stream", "tokens"), CASES)
def test_translated_usage_settles_tpm_fills_the_chat_log_and_the_users_usage(
    upstream: FakeUpstream,
    providers: FakeUpstream,
    proxy_factory: Factory,
    tmp_path: Path,
    model: str,
    stream: bool,
    tokens: int,
) -> None:
    proxy = proxy_factory(**all_features(upstream, providers, tmp_path))
    key = create(proxy.url, "tess")
    used, first = spend(proxy, key, model, stream)
    assert used == tokens
    _, second = spend(proxy, key, model, stream)
    # the same request reserves the same estimate: the difference is what the first one used
    assert remaining(first, "tokens") - remaining(second, "tokens") == tokens

    records = wait_records(tmp_path / "logs", 2)
    assert len(records) == 2
    record = records[0]
    assert (record["model"], record["user"], record["complete"]) == (model, "tess", True)
    assert record["usage"]["total_tokens"] == tokens
    reply = record["reply"]
    assert reply["choices"][0]["message"]["role"] == "assistant"
    assert reply["choices"][0]["finish_reason"] in ("stop", "tool_calls")
    if stream:
        name = "anthropic" if model.startswith("claude") else "gemini"
        expected = data(f"{name}_stream.openai.json")
        assert reply["choices"][0]["message"] == expected["choices"][0]["message"]
    else:
        assert reply["object"] == "chat.completion"

    report = admin(proxy.url).get("/admin/usage", params={"user": "tess"}).json()
    assert report["totals"]["tess"]["requests"] == 2
    assert report["totals"]["tess"]["total_tokens"] == 2 * tokens
    assert [r["model"] for r in report["data"]] == [model]
    assert not upstream.requests  # nothing went to the OpenAI route


def test_an_issued_keys_own_limits_replace_the_per_client_ones(
    upstream: FakeUpstream,
    providers: FakeUpstream,
    proxy_factory: Factory,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    proxy = proxy_factory(
        **all_features(upstream, providers, tmp_path, REQ_RATE_LIMIT=f"{CHAT}=2/minute")
    )
    key = create(proxy.url, "uma", rpm=5, tpm=50000, models=["gpt-4o-mini", "claude-sonnet-4-5"])
    printed: list[str] = []
    access_lines(capfd, printed, 0)
    answers = [post(proxy.url, key) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert [a.headers["x-ratelimit-limit-requests"] for a in answers[:5]] == ["5"] * 5
    assert [a.headers["x-ratelimit-limit-tokens"] for a in answers[:5]] == ["50000"] * 5
    assert "user uma" in answers[5].json()["error"]["message"]
    # the forward key still has the global per-client limit
    shared = [post(proxy.url, "fk-test") for _ in range(3)]
    assert [a.status_code for a in shared] == [200, 200, 429]
    assert shared[0].headers["x-ratelimit-limit-requests"] == "2"

    other = create(proxy.url, "vic", models=["gpt-4o-mini"])
    refused = post(proxy.url, other, model="gpt-4o-mini,claude-sonnet-4-5")
    assert refused.status_code == 403, refused.text
    assert "claude-sonnet-4-5" in refused.json()["error"]["message"]
    allowed = sdk(proxy.url, other).chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert allowed.choices[0].message.content
    assert len(upstream.requests) == 5 + 2 + 1
    assert not providers.requests

    lines = access_lines(capfd, printed, 6 + 3 + 2)
    assert len(lines) == 6 + 3 + 2
    assert any("-> 403" in line for line in lines)
    output = "\n".join(printed)
    for secret in (key, other, key[-12:], other[-12:], "fk-test"):
        assert secret not in output
    for record in read_records(tmp_path / "logs"):
        assert key not in str(record) and other not in str(record)


def test_the_model_list_of_an_issued_key_shows_only_its_models(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: Factory, tmp_path: Path
) -> None:
    upstream.handler = providers.handler  # the OpenAI route lists gpt-4o
    proxy = proxy_factory(**all_features(upstream, providers, tmp_path))
    key = create(proxy.url, "yan", models=["gpt-4o*", "claude-sonnet-*"])
    listed = sdk(proxy.url, key).models.list()
    assert [m.id for m in listed.data] == ["gpt-4o", "claude-sonnet-4-5"]
    everything = [m.id for m in sdk(proxy.url, create(proxy.url, "zoe")).models.list().data]
    assert everything[:3] == ["gpt-4o", "claude-opus-4-1", "claude-sonnet-4-5"]
    assert "gemini-2.0-flash" in everything
    assert [m.id for m in sdk(proxy.url, "fk-test").models.list().data] == everything
