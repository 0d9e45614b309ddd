"""Who may use a fallback, and what the answer counts as: users, token limits, chat log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.chatlog.fakes import wait_records
from tests.fakes import FakeUpstream, ProxyServer
from tests.fallbacks.fakes import OVERLOADED, failing, settings
from tests.providers.fakes import HI, client
from tests.users.fakes import TOKEN, admin, create

ProxyFactory = Callable[..., ProxyServer]
CLAUDE_USAGE = (11, 4)  # what the fake Anthropic reports for a plain reply


@pytest.fixture
def gateway(
    upstream: FakeUpstream,
    providers: FakeUpstream,
    proxy_factory: ProxyFactory,
    tmp_path: Path,
) -> ProxyServer:
    upstream.handler = failing(503, OVERLOADED)
    return proxy_factory(
        **settings(
            upstream,
            providers,
            ADMIN_TOKEN=TOKEN,
            STORE_URL=f"sqlite:///{tmp_path}/users.db",
            USAGE_FLUSH_INTERVAL=60,
        )
    )


def usage_rows(url: str, name: str) -> dict[str, Any]:
    shown = admin(url).get(f"/admin/users/{name}").json()["usage"]
    return {row["model"]: row for row in shown["data"]}


def test_user_restricted_to_one_model_gets_no_fallback(
    upstream: FakeUpstream, providers: FakeUpstream, gateway: ProxyServer
) -> None:
    key = create(gateway.url, "solo", models=["gpt-4o"])
    with pytest.raises(openai.InternalServerError) as caught:
        client(gateway, key).chat.completions.create(model="gpt-4o", messages=HI)
    assert "x-aifd-model" not in caught.value.response.headers
    assert len(upstream.requests) == 2
    assert providers.requests == []


def test_user_allowed_some_fallbacks_skips_the_others(
    upstream: FakeUpstream, providers: FakeUpstream, gateway: ProxyServer
) -> None:
    key = create(gateway.url, "duo", models=["gpt-4o", "gemini-*"])
    raw = client(gateway, key).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=HI
    )
    assert raw.parse().choices[0].message.content == "Hi from Gemini"
    assert raw.headers["x-aifd-attempts"] == "gpt-4o=2, gemini-1.5-pro=1"
    assert [r.path for r in providers.requests] == ["/v1beta/models/gemini-1.5-pro:generateContent"]


def test_usage_is_counted_on_the_model_that_answered(gateway: ProxyServer) -> None:
    key = create(gateway.url, "ana")
    client(gateway, key).chat.completions.create(model="gpt-4o", messages=HI)
    rows = usage_rows(gateway.url, "ana")
    assert set(rows) == {"claude-3-5-sonnet-latest"}
    row = rows["claude-3-5-sonnet-latest"]
    assert (row["requests"], row["prompt_tokens"], row["completion_tokens"]) == (1, *CLAUDE_USAGE)


def test_token_limit_is_settled_with_the_answering_models_usage(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    upstream.handler = failing(503, OVERLOADED)
    proxy = proxy_factory(**settings(upstream, providers, TPM_LIMIT="100000/minute"))
    remaining = []
    for _ in range(2):
        raw = client(proxy).chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
        assert raw.headers["x-aifd-model"] == "claude-3-5-sonnet-latest"
        remaining.append(int(raw.headers["x-ratelimit-remaining-tokens"]))
    # Each request reserves the same estimate; the first was then settled at what Claude
    # reported, so the second sees exactly that much less (the failed attempts cost nothing).
    assert remaining[0] - remaining[1] == sum(CLAUDE_USAGE)


def test_chat_log_records_the_model_that_answered(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory, tmp_path: Path
) -> None:
    upstream.handler = failing(503, OVERLOADED)
    proxy = proxy_factory(**settings(upstream, providers, LOG_CHAT="true", LOG_DIR=tmp_path))
    client(proxy).chat.completions.create(model="gpt-4o", messages=HI)
    (record,) = wait_records(tmp_path, 1)
    assert record["model"] == "claude-3-5-sonnet-latest"
    assert record["attempts"] == 3
    assert record["reply"]["choices"][0]["message"]["content"] == "Hi from Claude"
    assert record["usage"]["prompt_tokens"] == CLAUDE_USAGE[0]
