"""A budget is exact across instances: two `aifd run` processes charge one Redis ledger."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai

from tests.fakes import FakeUpstream
from tests.processes import aifd_instance
from tests.users.fakes import PLAIN, REPO, TOKEN, admin, sdk, usage_handler


def test_concurrent_requests_on_two_instances_never_pass_the_budget(
    upstream: FakeUpstream, redis_url: str, tmp_path: Path
) -> None:
    upstream.handler = usage_handler
    env = {
        "OPENAI_BASE_URL": upstream.url,
        "OPENAI_API_KEY": "sk-real",
        "ADMIN_TOKEN": TOKEN,
        "STORE_URL": redis_url,
        # Output tokens only: with max_tokens = the reply's 4 tokens, the worst case
        # reserved is exactly the real cost, $0.004 a request.
        "MODEL_PRICES": "gpt-4o-mini=0/1000",
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    with aifd_instance(env, tmp_path) as (a, proc_a), aifd_instance(env, tmp_path) as (b, proc_b):
        made = admin(a).post("/admin/users", json={"name": "gus", "budget": "0.02/day"})
        key = made.json()["key"]

        def one(i: int) -> str:
            messages: Any = [{"role": "user", "content": "hi"}]
            try:
                sdk(a if i % 2 else b, key).chat.completions.create(
                    model="gpt-4o-mini", messages=messages, max_tokens=PLAIN[1]
                )
            except openai.RateLimitError as exc:
                assert isinstance(exc.body, dict)
                return str(exc.body["code"])
            return "ok"

        with ThreadPoolExecutor(12) as pool:
            outcomes = list(pool.map(one, range(12)))
        assert outcomes.count("ok") == 5  # $0.02 / $0.004
        assert outcomes.count("budget_exceeded") == 7
        assert len(upstream.requests) == 5
        proc_a.terminate()
        proc_b.terminate()
