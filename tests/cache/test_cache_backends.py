"""Entries that outlive a process (SQLite) and entries shared by instances (Redis), for real:
`aifd run` subprocesses one after the other, or side by side; `aifd cache` and `/admin/cache`."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

from tests.cache.fakes import ask, numbered, sdk
from tests.fakes import FakeUpstream
from tests.processes import AIFD, ROOT, aifd_instance, clean_env
from tests.users.fakes import TOKEN


def aifd_cache(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = clean_env(PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [*AIFD, "cache", *args],
        env=environment,
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=60,
    )


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_sqlite_entries_survive_a_restart(upstream: FakeUpstream, tmp_path: Path) -> None:
    numbered(upstream)
    env = {
        "OPENAI_BASE_URL": upstream.url,
        "CACHE_BACKEND": "sqlite:///cache/answers.db",
        "ACCESS_LOG": "false",
    }
    with aifd_instance(env, tmp_path) as (url, _):
        assert ask(sdk(url, key="sk-client")) == ("answer 1", "miss")
    with aifd_instance(env, tmp_path) as (url, _):
        assert ask(sdk(url, key="sk-client"), stream=True) == ("answer 1", "hit")
    assert len(upstream.requests) == 1
    stats = aifd_cache(["stats"], tmp_path, CACHE_BACKEND="sqlite:///cache/answers.db")
    assert stats.returncode == 0, stats.stderr
    assert orjson.loads(stats.stdout)["entries"] == 1
    kept = aifd_cache(
        ["clear", "--older-than", "1h"], tmp_path, CACHE_BACKEND="sqlite:///cache/answers.db"
    )
    assert orjson.loads(kept.stdout) == {"deleted": 0}
    cleared = aifd_cache(
        ["clear", "--route", "openai"], tmp_path, CACHE_BACKEND="sqlite:///cache/answers.db"
    )
    assert orjson.loads(cleared.stdout) == {"deleted": 1}


def test_two_instances_share_a_redis_cache(
    upstream: FakeUpstream, redis_url: str, tmp_path: Path
) -> None:
    numbered(upstream)
    env = {
        "OPENAI_BASE_URL": upstream.url,
        "OPENAI_API_KEY": "sk-real",
        "FORWARD_KEY": "fk-team",
        "CACHE_BACKEND": redis_url,
        "ADMIN_TOKEN": TOKEN,
        "STORE_URL": redis_url,
        "ACCESS_LOG": "false",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        aifd_instance(env, tmp_path / "a") as (a, _),
        aifd_instance(env, tmp_path / "b") as (b, _),
    ):
        admin = {"authorization": f"Bearer {TOKEN}"}
        assert ask(sdk(a, key="fk-team")) == ("answer 1", "miss")
        entries = lambda: httpx.get(a + "/admin/cache", headers=admin).json()["entries"]  # noqa: E731
        wait_for(lambda: entries() == 1)  # stored once the answer has gone out
        assert ask(sdk(b, key="fk-team"), stream=True) == ("answer 1", "hit")
        assert ask(sdk(b, key="fk-team")) == ("answer 1", "hit")
        stats = httpx.get(b + "/admin/cache", headers=admin).json()
        assert (stats["backend"], stats["entries"], stats["hits"]) == ("redis", 1, 2)
        assert httpx.get(a + "/admin/cache").status_code == 401
        cleared = httpx.delete(a + "/admin/cache", params={"route": "openai"}, headers=admin)
        assert cleared.json() == {"deleted": 1}
        assert ask(sdk(b, key="fk-team")) == ("answer 2", "miss")
    assert len(upstream.requests) == 2
    assert aifd_cache(["stats"], tmp_path, CACHE_BACKEND=redis_url).returncode == 0


def test_cache_commands_refuse_the_memory_backend(tmp_path: Path) -> None:
    result = aifd_cache(["stats"], tmp_path)
    assert result.returncode == 1
    assert "/admin/cache" in result.stderr
