"""A budget is exact across processes: two instances on one Redis ledger, or two workers
on one SQLite file."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai

from tests.fakes import FakeUpstream
from tests.processes import aifd_instance
from tests.users.fakes import PLAIN, REPO, TOKEN, admin, sdk, usage_handler


def environment(upstream: FakeUpstream, store_url: str) -> dict[str, str]:
    upstream.handler = usage_handler
    return {
        "OPENAI_BASE_URL": upstream.url,
        "OPENAI_API_KEY": "sk-real",
        "ADMIN_TOKEN": TOKEN,
        "STORE_URL": store_url,
        # Output tokens only: with max_tokens = the reply's 4 tokens, the worst case
        # reserved is exactly the real cost, $0.004 a request.
        "MODEL_PRICES": "gpt-4o-mini=0/1000",
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }


def spend(urls: list[str], key: str, requests: int = 12) -> list[str]:
    """`requests` concurrent calls spread over `urls`; each one's outcome."""

    def one(i: int) -> str:
        messages: Any = [{"role": "user", "content": "hi"}]
        try:
            with sdk(urls[i % len(urls)], key) as client:
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, max_tokens=PLAIN[1]
                )
        except openai.RateLimitError as exc:
            assert isinstance(exc.body, dict)
            return str(exc.body["code"])
        return "ok"

    with ThreadPoolExecutor(requests) as pool:
        return list(pool.map(one, range(requests)))


def test_concurrent_requests_on_two_instances_never_pass_the_budget(
    upstream: FakeUpstream, redis_url: str, tmp_path: Path
) -> None:
    env = environment(upstream, redis_url)
    with aifd_instance(env, tmp_path) as (a, proc_a), aifd_instance(env, tmp_path) as (b, proc_b):
        made = admin(a).post("/admin/users", json={"name": "gus", "budget": "0.02/day"})
        outcomes = spend([a, b], made.json()["key"])
        assert outcomes.count("ok") == 5  # $0.02 / $0.004
        assert outcomes.count("budget_exceeded") == 7
        assert len(upstream.requests) == 5
        proc_a.terminate()
        proc_b.terminate()


def test_concurrent_requests_on_two_sqlite_workers_never_pass_the_budget(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    env = environment(upstream, f"sqlite:///{tmp_path}/users.db")
    with aifd_instance(env, tmp_path, workers=2) as (url, proc):
        made = admin(url).post("/admin/users", json={"name": "hal", "budget": "0.012/month"})
        outcomes = spend([url], made.json()["key"])
        assert outcomes.count("ok") == 3 and outcomes.count("budget_exceeded") == 9
        assert len(upstream.requests) == 3
        proc.terminate()
