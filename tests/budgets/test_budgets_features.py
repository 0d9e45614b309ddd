"""Budgets with the features that change what a request costs: fallbacks, several models in
one request, and the cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.cache.fakes import ask as ask_cached
from tests.cache.fakes import numbered
from tests.cache.fakes import sdk as cache_sdk
from tests.fakes import FakeUpstream, ProxyServer
from tests.fallbacks.fakes import OVERLOADED, failing, settings
from tests.providers.fakes import HI, env
from tests.users.fakes import TOKEN, admin, create, sdk, usage_handler

ProxyFactory = Callable[..., ProxyServer]
# gpt-4o is free here; its first fallback costs a tenth of a cent a token; Gemini is unpriced.
PRICES = "gpt-4o=0/0;claude-3-5-sonnet-latest=1000/1000"


@pytest.fixture
def fallback_gateway(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory, tmp_path: Path
) -> ProxyServer:
    upstream.handler = failing(503, OVERLOADED)  # gpt-4o always fails: Claude answers
    return proxy_factory(
        **settings(
            upstream,
            providers,
            ADMIN_TOKEN=TOKEN,
            STORE_URL=f"sqlite:///{tmp_path}/users.db",
            MODEL_PRICES=PRICES,
            USAGE_FLUSH_INTERVAL=0.1,
        )
    )


def ask(url: str, key: str, max_tokens: int, model: str = "gpt-4o") -> Any:
    with sdk(url, key) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=HI, max_tokens=max_tokens
        )
        return raw


def wait_usage(url: str, name: str, requests: int) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        usage: dict[str, Any] = admin(url).get(f"/admin/users/{name}").json()["usage"]
        if usage["total"]["requests"] >= requests or time.monotonic() > deadline:
            return usage
        time.sleep(0.05)


def test_a_fallbacks_answer_is_charged_at_the_fallbacks_price(
    fallback_gateway: ProxyServer,
) -> None:
    url = fallback_gateway.url
    key = create(url, "fil", budget="0.01/day")
    answered = ask(url, key, max_tokens=1)
    assert answered.headers["x-aifd-model"] == "claude-3-5-sonnet-latest"
    # Claude's 11 + 4 tokens: $0.015, though the model asked for (gpt-4o) is free.
    with pytest.raises(openai.RateLimitError) as caught:
        ask(url, key, max_tokens=1)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "budget_exceeded"
    assert "has spent $0.0150 of its $0.01 per day budget" in caught.value.body["message"]
    rows = {r["model"]: r for r in wait_usage(url, "fil", 1)["data"]}
    assert set(rows) == {"claude-3-5-sonnet-latest"}
    assert round(rows["claude-3-5-sonnet-latest"]["cost"], 6) == 0.015


def test_worst_case_counts_the_dearest_fallback_the_user_may_get(
    upstream: FakeUpstream, providers: FakeUpstream, fallback_gateway: ProxyServer
) -> None:
    url = fallback_gateway.url
    key = create(url, "wes", budget="0.01/day")
    # Up to 20 tokens from Claude ($0.02+) would pass $0.01: refused before going anywhere.
    with pytest.raises(openai.RateLimitError, match=r"may cost up to \$0\.02"):
        ask(url, key, max_tokens=20)
    assert upstream.requests == [] and providers.requests == []
    # A user who may not be given Claude only ever costs gpt-4o's price (nothing).
    only = create(url, "oli", budget="0.01/day", models=["gpt-4o"])
    with pytest.raises(openai.InternalServerError):  # gpt-4o fails and has no fallback here
        ask(url, only, max_tokens=20)
    assert providers.requests == []


def test_a_cache_hit_charges_nothing_to_the_budget_or_the_cost(
    upstream: FakeUpstream, proxy_factory: ProxyFactory, tmp_path: Path
) -> None:
    numbered(upstream)  # 9 + 4 tokens a reply: $0.013 at a tenth of a cent a token
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real",
        ADMIN_TOKEN=TOKEN,
        STORE_URL=f"sqlite:///{tmp_path}/users.db",
        MODEL_PRICES="gpt-4o-mini=1000/1000",
        CACHE_ROUTES="/v1/chat/completions",
        USAGE_FLUSH_INTERVAL=0.1,
    )
    key = create(proxy.url, "kit", budget="0.03/day")
    client = cache_sdk(proxy.url, key=key)
    assert ask_cached(client, max_tokens=2) == ("answer 1", "miss")
    for stream in (False, True, False, True, False):  # five hits: a charge would stop the 3rd
        assert ask_cached(client, stream=stream, max_tokens=2) == ("answer 1", "hit")
    assert len(upstream.requests) == 1
    # The ledger holds the miss alone: a request that may cost more than what is left says so.
    with pytest.raises(openai.RateLimitError) as caught:
        ask_cached(client, max_tokens=100)
    assert isinstance(caught.value.body, dict)
    assert "has spent $0.0130 of its $0.03 per day budget" in caught.value.body["message"]
    usage = wait_usage(proxy.url, "kit", 6)
    assert usage["total"]["requests"] == 6 and round(usage["total"]["cost"], 6) == 0.013


def test_several_models_in_one_request_are_charged_at_the_dearest(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory, tmp_path: Path
) -> None:
    upstream.handler = usage_handler  # gpt-4o-mini: 11 + 4 tokens; Gemini reports 6 + 3
    proxy = proxy_factory(
        **env(
            upstream,
            providers,
            ADMIN_TOKEN=TOKEN,
            STORE_URL=f"sqlite:///{tmp_path}/users.db",
            MODEL_PRICES="gpt-4o-mini=1000/1000",  # Gemini has no price of its own here
            USAGE_FLUSH_INTERVAL=0.1,
        )
    )
    key = create(proxy.url, "fan", budget="0.02/day")
    reply = ask(proxy.url, key, max_tokens=1, model="gpt-4o-mini,gemini-2.0-flash").parse()
    assert [c.model_dump()["model"] for c in reply.choices] == ["gpt-4o-mini", "gemini-2.0-flash"]
    # 24 tokens added up, each at the dearest price: $0.024, past the $0.02.
    with pytest.raises(openai.RateLimitError, match=r"has spent \$0\.0240 of its \$0\.02"):
        ask(proxy.url, key, max_tokens=1, model="gpt-4o-mini,gemini-2.0-flash")
    usage = wait_usage(proxy.url, "fan", 1)
    assert round(usage["total"]["cost"], 6) == 0.024
