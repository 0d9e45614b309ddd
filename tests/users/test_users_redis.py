"""Two `aifd run` processes sharing users, invalidations and usage through one Redis."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import openai
import orjson

from tests.fakes import FakeUpstream, ProxyServer
from tests.processes import AIFD, aifd_instance, clean_env
from tests.users.fakes import PLAIN, REPO, TOKEN, admin, chat, usage_handler


def within(seconds: float, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s"
        time.sleep(0.02)


def refused(url: str, key: str) -> bool:
    try:
        chat(url, key)
    except openai.AuthenticationError:
        return True
    return False


def test_two_instances_share_users_and_drop_reset_or_deleted_keys_at_once(
    upstream: FakeUpstream, redis_url: str, tmp_path: Path
) -> None:
    upstream.handler = usage_handler
    env = {
        "OPENAI_BASE_URL": upstream.url,
        "OPENAI_API_KEY": "sk-real",
        "ADMIN_TOKEN": TOKEN,
        "STORE_URL": redis_url,
        "KEY_CACHE_TTL": "60",  # only the invalidation can make a key stop working in time
        "USAGE_FLUSH_INTERVAL": "0.1",
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    with aifd_instance(env, tmp_path) as (a, proc_a), aifd_instance(env, tmp_path) as (b, proc_b):
        created = admin(a).post("/admin/users", json={"name": "ann"}).json()
        key = created["key"]
        assert chat(b, key) == "Hi!"  # created on A, cached on B
        assert chat(a, key) == "Hi!"

        new = admin(a).post("/admin/users/ann/reset").json()["key"]
        within(0.5, lambda: refused(b, key))
        assert refused(a, key)
        assert chat(b, new) == "Hi!"

        cli = [*AIFD, "users", "reset", "ann", "--store", redis_url, "--json"]
        done = subprocess.run(cli, env=clean_env(**env), capture_output=True, timeout=30)
        assert done.returncode == 0, done.stderr
        newest = orjson.loads(done.stdout)["key"]
        within(0.5, lambda: refused(a, new) and refused(b, new))
        assert chat(a, newest) == "Hi!"

        admin(b).delete("/admin/users/ann")
        within(0.5, lambda: refused(a, newest))
        assert refused(b, newest)

        served = len(upstream.requests)

        def counted() -> bool:
            report = admin(a).get("/admin/usage").json()
            return report["totals"].get("ann", {}).get("requests") == served

        within(5, counted)
        totals = admin(b).get("/admin/usage").json()["totals"]["ann"]
        assert totals["prompt_tokens"] == served * PLAIN[0]
        assert totals["completion_tokens"] == served * PLAIN[1]
        proc_a.terminate()
        proc_b.terminate()
        logs = proc_a.communicate(timeout=20)[0] + proc_b.communicate(timeout=20)[0]
    assert "key=user" in logs
    for secret in (key, new, newest, key[5:], new[5:], newest[5:], TOKEN):
        assert secret not in logs


def test_out_of_range_expiry_is_refused_and_users_still_list_on_redis(
    upstream: FakeUpstream, redis_url: str, proxy_factory: Callable[..., ProxyServer]
) -> None:
    gateway = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real",
        ADMIN_TOKEN=TOKEN,
        STORE_URL=redis_url,
    )
    api = admin(gateway.url)
    for far in (1e20, -5, "+10000-01-01"):
        response = api.post("/admin/users", json={"name": "far", "expires_at": far})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["param"] == "expires_at"
    assert api.post("/admin/users", json={"name": "near", "expires_at": 4102444800}).is_success
    listed = api.get("/admin/users")
    assert listed.status_code == 200
    assert [(u["name"], u["expires_at"]) for u in listed.json()["data"]] == [
        ("near", "2100-01-01T00:00:00Z")
    ]
