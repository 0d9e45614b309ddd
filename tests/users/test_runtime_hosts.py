"""Hosts X-Host-Final may name, added at run time (/admin/hosts, the seed's addkey URL,
`aifd hosts`): usable at once, on every instance, their keys never shown or leaked."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.fakes import FakeUpstream, ProxyServer, Recorded, completion, json_response
from tests.processes import AIFD, aifd_instance, clean_env
from tests.users.fakes import REPO, TOKEN, admin
from tests.users.test_users_redis import within

HOST_KEY = "gsk-runtime-0123456789abcdef"
CHAT = {"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}


async def echo_key(request: web.Request, rec: Recorded) -> web.StreamResponse:
    """A careless upstream that repeats the key it got in its answer."""
    return await json_response(completion(f"you sent {rec.headers.get('authorization')}"))


@pytest.fixture
def groq() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    fake.handler = echo_key
    yield fake
    fake.stop()


@pytest.fixture
def gateway(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], tmp_path: Path
) -> ProxyServer:
    return proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real-main",
        FORWARD_KEY="fk-client",
        HOST_ALLOWLIST="api.configured.example",
        HOST_KEYS="api.configured.example=ck-configured-0123",
        ADMIN_TOKEN=TOKEN,
        STORE_URL=f"sqlite:///{tmp_path}/users.db",
    )


def via_host(url: str, host: str, key: str = "fk-client") -> httpx.Response:
    headers = {"authorization": f"Bearer {key}", "x-host-final": host}
    return httpx.post(url + "/v1/chat/completions", json=CHAT, headers=headers, timeout=10)


def test_admin_adds_a_host_at_run_time_its_key_goes_upstream_and_never_back(
    groq: FakeUpstream, upstream: FakeUpstream, gateway: ProxyServer, loguru_lines: list[str]
) -> None:
    host = f"127.0.0.1:{groq.port}"
    before = via_host(gateway.url, host)
    assert before.status_code == 403 and before.json()["error"]["code"] == "host_not_allowed"

    api = admin(gateway.url)
    added = api.post("/admin/hosts", json={"host": f"http://{host}", "keys": [HOST_KEY]})
    assert added.status_code == 201, added.text
    assert added.json()["keys"] == ["..." + HOST_KEY[-4:]]
    assert added.json()["base_url"] == f"http://{host}"

    answer = via_host(gateway.url, host)
    assert answer.status_code == 200, answer.text
    assert groq.last.headers["authorization"] == f"Bearer {HOST_KEY}"
    assert groq.last.path == "/v1/chat/completions"
    text = answer.json()["choices"][0]["message"]["content"]
    assert HOST_KEY not in answer.text and text.startswith("you sent Bearer [REDACTED")

    listed = api.get("/admin/hosts")
    assert [h["host"] for h in listed.json()["data"]] == [host]
    assert HOST_KEY not in listed.text

    assert api.delete(f"/admin/hosts/{host}").json() == {"host": host, "deleted": True}
    after = via_host(gateway.url, host)
    assert after.status_code == 403 and after.json()["error"]["code"] == "host_not_allowed"
    assert api.delete(f"/admin/hosts/{host}").status_code == 404
    assert upstream.requests == [] and len(groq.requests) == 1
    assert not any(HOST_KEY in line for line in loguru_lines)


def test_replacing_a_hosts_keys_takes_effect_at_once(
    groq: FakeUpstream, gateway: ProxyServer
) -> None:
    host = f"127.0.0.1:{groq.port}"
    api = admin(gateway.url)
    assert api.post("/admin/hosts", json={"host": f"http://{host}", "key": HOST_KEY}).is_success
    replaced = api.post(
        "/admin/hosts", json={"host": f"http://{host}", "keys": ["gsk-second-key-01"]}
    )
    assert replaced.status_code == 200
    assert via_host(gateway.url, host).status_code == 200
    assert groq.last.headers["authorization"] == "Bearer gsk-second-key-01"


@pytest.mark.parametrize(
    ("body", "param", "wanted"),
    [
        ({"keys": [HOST_KEY]}, "host", "api.groq.com"),
        ({"host": "api.groq.com/openai", "keys": [HOST_KEY]}, "host", "no path"),
        ({"host": "ftp://api.groq.com", "keys": [HOST_KEY]}, "host", "http"),
        ({"host": "user:pw@api.groq.com", "keys": [HOST_KEY]}, "host", "no user"),
        ({"host": "api.configured.example", "keys": [HOST_KEY]}, "host", "HOST_ALLOWLIST"),
        ({"host": "api.groq.com"}, "keys", "real keys"),
        ({"host": "api.groq.com", "keys": []}, "keys", "real keys"),
        ({"host": "api.groq.com", "keys": ["short"]}, "keys", "8 to"),
        ({"host": "api.groq.com", "keys": ["gsk with space"]}, "keys", "no spaces"),
        ({"host": "api.groq.com", "keys": [HOST_KEY], "ttl": 5}, "ttl", "unknown field"),
    ],
)
def test_bad_hosts_are_422_naming_the_field(
    gateway: ProxyServer, body: dict[str, Any], param: str, wanted: str
) -> None:
    answer = admin(gateway.url).post("/admin/hosts", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and wanted in error["message"]
    assert admin(gateway.url).get("/admin/hosts").json()["data"] == []


def test_hosts_calls_need_the_admin_token(gateway: ProxyServer) -> None:
    body = {"host": "api.groq.com", "keys": [HOST_KEY]}
    assert httpx.post(gateway.url + "/admin/hosts", json=body).status_code == 401
    wrong = {"authorization": "Bearer fk-client"}
    assert httpx.get(gateway.url + "/admin/hosts", headers=wrong).status_code == 401
    assert admin(gateway.url).get("/admin/hosts").json()["data"] == []


def test_seed_addkey_url_adds_a_host_and_the_key_is_in_no_log(
    upstream: FakeUpstream, gateway: ProxyServer, loguru_lines: list[str]
) -> None:
    added = httpx.post(f"{gateway.url}/{TOKEN}/addkey/api.groq.com/{HOST_KEY}")
    assert added.status_code == 201, added.text
    assert added.json()["base_url"] == "https://api.groq.com"
    listed = admin(gateway.url).get("/admin/hosts").json()["data"]
    assert [(h["host"], h["keys"]) for h in listed] == [("api.groq.com", ["..." + HOST_KEY[-4:]])]
    wrong = httpx.post(f"{gateway.url}/not-the-admin-token-00/addkey/evil.example/{HOST_KEY}")
    assert wrong.status_code == 401
    assert upstream.requests == []
    assert not any(HOST_KEY in line or TOKEN in line for line in loguru_lines)


def aifd_hosts(
    *args: str, store: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = clean_env(PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [*AIFD, "hosts", *args, "--store", store],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_cli_hosts_reach_every_instance_on_redis(
    groq: FakeUpstream, upstream: FakeUpstream, redis_url: str, tmp_path: Path
) -> None:
    host = f"127.0.0.1:{groq.port}"
    env = {
        "OPENAI_BASE_URL": upstream.url,
        "OPENAI_API_KEY": "sk-real-main",
        "FORWARD_KEY": "fk-client",
        "ADMIN_TOKEN": TOKEN,
        "STORE_URL": redis_url,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    with aifd_instance(env, tmp_path) as (a, proc_a), aifd_instance(env, tmp_path) as (b, proc_b):
        assert via_host(b, host).status_code == 403
        added = aifd_hosts("add", f"http://{host}", "-", "--json", store=redis_url, stdin=HOST_KEY)
        assert added.returncode == 0, added.stderr
        assert HOST_KEY not in added.stdout
        within(2, lambda: via_host(a, host).status_code == 200)
        within(2, lambda: via_host(b, host).status_code == 200)
        assert groq.last.headers["authorization"] == f"Bearer {HOST_KEY}"
        assert HOST_KEY not in via_host(b, host).text

        listed = aifd_hosts("list", "--json", store=redis_url)
        assert host in listed.stdout and HOST_KEY not in listed.stdout
        admin(a).delete(f"/admin/hosts/{host}")
        within(2, lambda: via_host(b, host).status_code == 403)
        gone = aifd_hosts("remove", host, store=redis_url)
        assert gone.returncode == 1 and "no runtime host" in gone.stderr
        proc_a.terminate()
        proc_b.terminate()
        logs = proc_a.communicate(timeout=20)[0] + proc_b.communicate(timeout=20)[0]
    assert HOST_KEY not in logs


def test_cli_host_reaches_a_running_sqlite_server(
    groq: FakeUpstream, gateway: ProxyServer, tmp_path: Path
) -> None:
    host = f"127.0.0.1:{groq.port}"
    store = f"sqlite:///{tmp_path}/users.db"
    added = aifd_hosts("add", f"http://{host}", HOST_KEY, store=store)
    assert added.returncode == 0, added.stderr
    within(3, lambda: via_host(gateway.url, host).status_code == 200)
    assert groq.last.headers["authorization"] == f"Bearer {HOST_KEY}"
    bad = aifd_hosts("add", "api.groq.com/x", HOST_KEY, store=store)
    assert bad.returncode == 2 and "no path" in bad.stderr
