"""`aifd users` sets budgets and reports cost, on the store a running server uses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import openai
import pytest

from tests.budgets.test_budgets import ask
from tests.fakes import FakeUpstream, ProxyServer
from tests.users.fakes import PLAIN, chat, usage_handler
from tests.users.test_users_cli import aifd_users, eventually, store_dir  # noqa: F401


def test_cli_budget_holds_on_the_server_and_usage_reports_cost(
    upstream: FakeUpstream,
    proxy_factory: Callable[..., ProxyServer],
    store_dir: Path,  # noqa: F811
) -> None:
    upstream.handler = usage_handler
    server = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real",
        STORE_URL=f"sqlite:///{store_dir}/shared.db",
        MODEL_PRICES="gpt-4o-mini=1000/1000",
        KEY_CACHE_TTL=0,
        USAGE_FLUSH_INTERVAL=0.1,
    )
    made = aifd_users(store_dir, "add", "kim", "--budget", "0.015/day", "--json")
    assert made["budget"] == {"amount": 0.015, "period": "day"}
    ask(server.url, made["key"], max_tokens=5)  # $0.015: the budget is spent
    with pytest.raises(openai.RateLimitError, match="budget exceeded"):
        ask(server.url, made["key"], max_tokens=5)

    def reported() -> bool:
        report = aifd_users(store_dir, "usage", "kim", "--json")
        return bool(report["total"]["requests"] == 1)

    eventually(reported)
    report = aifd_users(store_dir, "usage", "--json")
    assert round(report["totals"]["kim"]["cost"], 6) == sum(PLAIN) * 0.001
    assert report["models"]["gpt-4o-mini"]["total_tokens"] == sum(PLAIN)
    table = aifd_users(store_dir, "usage").stdout
    assert "0.0150" in table and "all" in table

    changed = aifd_users(store_dir, "set", "kim", "--budget", "none", "--json")
    assert changed["budget"] is None
    assert chat(server.url, made["key"]) == "Hi!"
    wrong = aifd_users(store_dir, "set", "kim", "--budget", "5/week", code=2)
    assert "--budget" in wrong.stderr and "5/day" in wrong.stderr
