"""Budgets on the request path: worst case charged first, settled on the real usage."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.fakes import FakeUpstream, ProxyServer
from tests.users.fakes import PLAIN, admin, chat, create, sdk, users_gateway

# $1000 per million tokens in and out: a token costs a tenth of a cent.
PRICES = "gpt-4o-mini=1000/1000;gpt-4o=0/1000"


@pytest.fixture
def gateway(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], tmp_path: Path
) -> ProxyServer:
    return users_gateway(
        upstream, proxy_factory, tmp_path, MODEL_PRICES=PRICES, USAGE_FLUSH_INTERVAL=0.1
    )


def ask(url: str, key: str, max_tokens: int = 10, model: str = "gpt-4o-mini") -> Any:
    messages: Any = [{"role": "user", "content": "hi"}]
    with sdk(url, key) as client:
        return client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens)


def test_user_past_budget_gets_429_budget_exceeded_with_amount_and_reset(
    upstream: FakeUpstream, gateway: ProxyServer
) -> None:
    key = create(gateway.url, "bea", budget="0.05/day")
    # Each reply reports 11 + 4 tokens: $0.015 once settled; the worst case is ~$0.011.
    for _ in range(3):
        ask(gateway.url, key)
    served = len(upstream.requests)
    with pytest.raises(openai.RateLimitError) as caught:
        ask(gateway.url, key)
    assert len(upstream.requests) == served  # refused before going upstream
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "budget_exceeded"
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert "$0.0450 of its $0.05 per day budget" in error["message"]
    assert f"resets at {tomorrow}T00:00:00Z" in error["message"]
    headers = caught.value.response.headers
    assert headers["x-budget-limit-usd"] == "0.05" and int(headers["retry-after"]) >= 1


def test_worst_case_is_reserved_before_the_request_goes_upstream(
    upstream: FakeUpstream, gateway: ProxyServer
) -> None:
    key = create(gateway.url, "cy", budget={"amount": 0.02, "period": "month"})
    with pytest.raises(openai.RateLimitError, match=r"may cost up to \$0\.0210"):
        ask(gateway.url, key, max_tokens=20)  # 1 prompt + 20 tokens: $0.021 > $0.02
    assert upstream.requests == []
    ask(gateway.url, key, max_tokens=5)  # $0.006 reserved, $0.015 really spent
    with pytest.raises(openai.RateLimitError, match=r"\$0\.0150 of its \$0\.02 per month"):
        ask(gateway.url, key, max_tokens=5)


def test_budget_changes_and_unbudgeted_users_are_not_held(gateway: ProxyServer) -> None:
    key = create(gateway.url, "dee", budget="0.01/day")
    free = create(gateway.url, "eli")
    ask(gateway.url, key, max_tokens=1)
    with pytest.raises(openai.RateLimitError):
        ask(gateway.url, key, max_tokens=1)
    changed = admin(gateway.url).patch("/admin/users/dee", json={"budget": "1/day"})
    assert changed.json()["budget"] == {"amount": 1.0, "period": "day"}
    for _ in range(3):
        ask(gateway.url, key, max_tokens=1)
        assert chat(gateway.url, free) == "Hi!"
    wrong = admin(gateway.url).patch("/admin/users/dee", json={"budget": "1/week"})
    assert wrong.status_code == 422 and wrong.json()["error"]["param"] == "budget"


def test_usage_report_gives_cost_per_user_model_and_day_with_totals(
    gateway: ProxyServer,
) -> None:
    key = create(gateway.url, "fay")
    ask(gateway.url, key)
    ask(gateway.url, key, model="gpt-4o")
    ask(gateway.url, key, model="o1")  # no price: tokens counted, cost 0
    each = sum(PLAIN)
    expected = {"gpt-4o-mini": each * 0.001, "gpt-4o": PLAIN[1] * 0.001, "o1": 0.0}

    def report() -> dict[str, Any]:
        data: dict[str, Any] = admin(gateway.url).get("/admin/usage").json()
        return data

    deadline = time.monotonic() + 5
    while report()["total"]["requests"] < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    shown = report()
    rows = {r["model"]: r for r in shown["data"]}
    assert {m: round(r["cost"], 6) for m, r in rows.items()} == expected
    assert rows["o1"]["total_tokens"] == each
    today = datetime.now(UTC).date().isoformat()
    assert {r["day"] for r in shown["data"]} == {today}
    assert round(shown["totals"]["fay"]["cost"], 6) == round(sum(expected.values()), 6)
    assert round(shown["total"]["cost"], 6) == round(sum(expected.values()), 6)
    assert shown["total"]["requests"] == 3 and round(shown["days"][today]["cost"], 6) > 0
    assert round(shown["models"]["gpt-4o"]["cost"], 6) == expected["gpt-4o"]
