"""`aifd users ...` on the same SQLite store as a running server."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from ai_forward.users.user import User, check_time
from tests.fakes import FakeUpstream, ProxyServer
from tests.processes import AIFD, clean_env
from tests.users.fakes import PLAIN, REPO, chat, usage_handler


def aifd_users(cwd: Path, *args: str, code: int = 0) -> Any:
    """Run `aifd users ARGS --json` in `cwd` (whose .env names the store); its JSON output."""
    env = clean_env(PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(
        [*AIFD, "users", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == code, result.stdout + result.stderr
    return orjson.loads(result.stdout) if code == 0 and "--json" in args else result


def eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)


def refused(url: str, key: str, model: str = "gpt-4o-mini") -> bool:
    try:
        chat(url, key, model=model)
    except (openai.AuthenticationError, openai.PermissionDeniedError):
        return True
    return False


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    (tmp_path / ".env").write_text(f"STORE_URL=sqlite:///{tmp_path}/shared.db\n")
    return tmp_path


def test_cli_manages_users_of_a_running_server(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], store_dir: Path
) -> None:
    upstream.handler = usage_handler
    server = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real",
        FORWARD_KEY="fk",
        STORE_URL=f"sqlite:///{store_dir}/shared.db",
        KEY_CACHE_TTL=60,
        USAGE_FLUSH_INTERVAL=0.1,
    )
    # The rpm is enforced (on its own): high enough for the polling below.
    added = aifd_users(store_dir, "add", "ann", "--models", "gpt-4o-mini", "--rpm", "500", "--json")
    key = added["key"]
    assert added["rpm"] == 500 and key.startswith("aifd-")
    assert chat(server.url, key) == "Hi!"
    assert upstream.last.headers["authorization"] == "Bearer sk-real"

    aifd_users(store_dir, "set", "ann", "--models", "gpt-4o-mini,o1", "--json")
    eventually(lambda: not refused(server.url, key, model="o1"))

    new = aifd_users(store_dir, "reset", "ann", "--json")["key"]
    eventually(lambda: refused(server.url, key))
    assert chat(server.url, new) == "Hi!"

    served = len(upstream.requests)  # every one of them made with ann's keys

    def counted() -> bool:
        rows = aifd_users(store_dir, "usage", "ann", "--json")
        return sum(r["requests"] for r in rows) == served

    eventually(counted)
    shown = aifd_users(store_dir, "show", "ann", "--json")
    assert sum(r["prompt_tokens"] for r in shown["usage"]) == served * PLAIN[0]
    assert {r["model"] for r in shown["usage"]} == {"gpt-4o-mini", "o1"}
    assert [u["name"] for u in aifd_users(store_dir, "list", "--json")] == ["ann"]

    aifd_users(store_dir, "delete", "ann", "--json")
    eventually(lambda: refused(server.url, new))


def test_cli_errors_name_what_to_fix(store_dir: Path) -> None:
    aifd_users(store_dir, "add", "bo")
    result = aifd_users(store_dir, "add", "bo", code=1)
    assert "exists already" in result.stderr
    result = aifd_users(store_dir, "reset", "nobody", code=1)
    assert "no user named 'nobody'" in result.stderr
    result = aifd_users(store_dir, "add", "cy", "--rpm", "lots", code=2)
    assert "--rpm" in result.stderr
    result = aifd_users(store_dir, "add", "cy", "--routes", "/nowhere", code=2)
    assert "--routes" in result.stderr
    for far in ("10000-01-01", "1e20", "1960-01-01"):
        result = aifd_users(store_dir, "add", "cy", "--expires", far, code=2)
        assert "--expires" in result.stderr and "9999" in result.stderr
    assert [u["name"] for u in aifd_users(store_dir, "list", "--json")] == ["bo"]
    result = aifd_users(store_dir, "set", "bo", code=2)
    assert "nothing to change" in result.stderr
    result = aifd_users(store_dir, "list", "--store", "mysql://x", code=2)
    assert "--store" in result.stderr


def test_cli_prints_tables_and_the_key_once(store_dir: Path) -> None:
    result = aifd_users(store_dir, "add", "dee", "--expires", "2099-12-31")
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("aifd-") and "shown once" in result.stdout
    listing = aifd_users(store_dir, "list").stdout
    assert "dee" in listing and key not in listing
    # A date alone lasts through that UTC day.
    assert "2100-01-01T00:00:00Z" in aifd_users(store_dir, "show", "dee").stdout


def test_expires_null_never_and_none_all_mean_no_expiry(store_dir: Path) -> None:
    for word in ("null", "never", "None"):
        aifd_users(store_dir, "add", f"u-{word}", "--expires", word)
        assert aifd_users(store_dir, "show", f"u-{word}", "--json")["expires_at"] is None
    aifd_users(store_dir, "add", "dated", "--expires", "2026-12-31")
    aifd_users(store_dir, "set", "dated", "--expires", "null")
    assert aifd_users(store_dir, "show", "dated", "--json")["expires_at"] is None
    result = aifd_users(store_dir, "add", "bad", "--expires", "someday", code=2)
    assert "--expires" in result.stderr and "null" in result.stderr


def test_expires_on_a_date_ends_the_key_at_the_end_of_that_utc_day(store_dir: Path) -> None:
    aifd_users(store_dir, "add", "dated", "--expires", "2026-12-31")
    shown = aifd_users(store_dir, "show", "dated", "--json")
    assert shown["expires_at"] == "2027-01-01T00:00:00Z"
    end = check_time("expires_at", "2026-12-31")
    assert end is not None
    user = User(name="dated", key_hash="h", expires_at=end)
    last_moment = datetime(2026, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp()
    assert not user.expired(last_moment)
    assert user.expired(datetime(2027, 1, 1, tzinfo=UTC).timestamp())
    # A time keeps its meaning: the start of the day is the start of the day.
    assert check_time("expires_at", "2026-12-31T00:00:00Z") == end - 86400
