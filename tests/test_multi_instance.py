"""The scaled-out setup of deploy.md, for real: one redis-server, two `aifd run --workers 2`.

Traffic goes to both instances; the request limit holds exactly across all four workers,
a user created on one instance works on the other at once, and the chat logs written by
all four workers hold every exchange.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.chatlog.fakes import read_records
from tests.fakes import FakeUpstream
from tests.processes import aifd_instance
from tests.users.fakes import TOKEN, admin, usage_handler

LIMIT = 40
SENT = 64
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


async def burst(urls: list[str], key: str, count: int) -> list[int]:
    """`count` chat completions at once, alternating between the instances."""
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(i: int) -> int:
            url = urls[i % len(urls)] + "/v1/chat/completions"
            reply = await client.post(url, json=BODY, headers={"authorization": f"Bearer {key}"})
            return reply.status_code

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def test_two_instances_with_two_workers_share_limits_users_and_log_everything(
    upstream: FakeUpstream, redis_url: str, tmp_path: Path
) -> None:
    upstream.handler = usage_handler
    env = {
        "OPENAI_BASE_URL": upstream.url,
        "OPENAI_API_KEY": "sk-shared",
        "FORWARD_KEY": "fk-team",
        "ADMIN_TOKEN": TOKEN,
        "STORE_URL": redis_url,
        "RATE_LIMIT_BACKEND": redis_url,
        "REQ_RATE_LIMIT": f"/v1/chat/completions={LIMIT}/minute",
        "LOG_CHAT": "true",
        "LOG_DIR": str(tmp_path / "Log"),
        "ACCESS_LOG": "false",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        aifd_instance(env, tmp_path / "a", workers=2) as (a, _),
        aifd_instance(env, tmp_path / "b", workers=2) as (b, _),
    ):
        # Limits: 64 requests over 4 workers on 2 instances, 40/minute for the key.
        statuses = asyncio.run(burst([a, b], "fk-team", SENT))
        assert statuses.count(200) == LIMIT
        assert statuses.count(429) == SENT - LIMIT

        # Users: created on A, usable on B at once, with its own (shared) limit.
        created = admin(a).post("/admin/users", json={"name": "bo", "rpm": 5})
        assert created.status_code == 201, created.text
        key = created.json()["key"]
        statuses = asyncio.run(burst([b, a], key, 8))
        assert statuses.count(200) == 5
        assert statuses.count(429) == 3
    # Both instances got SIGTERM and drained: every served exchange is on disk.
    served = LIMIT + 5
    records = read_records(tmp_path / "Log")
    assert len(records) == served
    assert len(upstream.requests) == served
    writers = {path.name for path in (tmp_path / "Log" / "chat").rglob("*.jsonl")}
    assert len(writers) >= 2  # separate files per worker process, never interleaved
