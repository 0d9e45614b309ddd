"""A hit counts as a request for limits and usage, as zero tokens, and is chat-logged as a hit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from tests.cache.fakes import MESSAGES, ask, numbered, sdk
from tests.chatlog.fakes import wait_records
from tests.fakes import FakeUpstream, ProxyServer
from tests.users.fakes import TOKEN, admin, create

ProxyFactory = Callable[..., ProxyServer]
URL = "/v1/chat/completions"
BODY = {"model": "gpt-4o-mini", "messages": MESSAGES, "caching": True}


def test_a_hit_counts_against_the_request_limit(
    upstream: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    numbered(upstream)
    proxy = proxy_factory(OPENAI_BASE_URL=upstream.url, REQ_RATE_LIMIT="2/minute")
    client = sdk(proxy.url, key="sk-client")
    assert ask(client) == ("answer 1", "miss")
    assert ask(client) == ("answer 1", "hit")
    with pytest.raises(openai.RateLimitError):
        ask(client)
    assert len(upstream.requests) == 1


def test_a_hit_costs_no_tokens(upstream: FakeUpstream, proxy_factory: ProxyFactory) -> None:
    numbered(upstream)
    proxy = proxy_factory(OPENAI_BASE_URL=upstream.url, TPM_LIMIT="100000/minute")
    headers = {"authorization": "Bearer sk-client"}
    answers = [httpx.post(proxy.url + URL, json=BODY, headers=headers) for _ in range(3)]
    assert [a.headers["x-aifd-cache"] for a in answers] == ["miss", "hit", "hit"]
    remaining = [int(a.headers["x-ratelimit-remaining-tokens"]) for a in answers[1:]]
    assert remaining[0] == remaining[1]  # the first hit gave its whole reservation back


def test_a_hit_counts_as_a_request_with_zero_tokens_in_user_usage(
    upstream: FakeUpstream, proxy_factory: ProxyFactory, tmp_path: Path
) -> None:
    numbered(upstream)
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real",
        ADMIN_TOKEN=TOKEN,
        STORE_URL=f"sqlite:///{tmp_path}/users.db",
    )
    key = create(proxy.url, "alice")
    client = sdk(proxy.url, key=key)
    assert ask(client) == ("answer 1", "miss")
    assert ask(client, stream=True) == ("answer 1", "hit")
    totals = admin(proxy.url).get("/admin/usage").json()["totals"]["alice"]
    assert totals["requests"] == 2
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (9, 4)
    assert upstream.requests[0].headers["authorization"] == "Bearer sk-real"


def test_two_users_do_not_share_entries(
    upstream: FakeUpstream, proxy_factory: ProxyFactory, tmp_path: Path
) -> None:
    numbered(upstream)
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real",
        ADMIN_TOKEN=TOKEN,
        STORE_URL=f"sqlite:///{tmp_path}/users.db",
    )
    alice = sdk(proxy.url, key=create(proxy.url, "alice"))
    bob = sdk(proxy.url, key=create(proxy.url, "bob"))
    assert ask(alice) == ("answer 1", "miss")
    assert ask(bob) == ("answer 2", "miss")
    assert ask(alice, stream=True) == ("answer 1", "hit")


def test_a_hit_is_chat_logged_as_a_hit(
    upstream: FakeUpstream, proxy_factory: ProxyFactory, tmp_path: Path
) -> None:
    numbered(upstream)
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url, LOG_CHAT="true", LOG_DIR=str(tmp_path / "Log")
    )
    client = sdk(proxy.url, key="sk-client-secret")
    ask(client)
    ask(client, stream=True)
    records = wait_records(tmp_path / "Log", 2)
    assert [r.get("cache") for r in records] == [None, "hit"]
    hit = records[1]
    assert hit["reply"]["choices"][0]["message"]["content"] == "answer 1"
    assert hit["complete"] is True and hit["status"] == 200
    assert hit["usage"]["total_tokens"] == 0
    assert "sk-client-secret" not in str(records)
