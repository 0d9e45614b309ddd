"""A key holder replaces their own issued key: `POST /v1/aifd/key/reset`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.fakes import FakeUpstream, ProxyServer
from tests.processes import aifd_instance
from tests.users.fakes import REPO, TOKEN, admin, chat, create, usage_handler, users_gateway
from tests.users.test_users_cli import aifd_users
from tests.users.test_users_redis import refused, within

RESET = "/v1/aifd/key/reset"


def reset(url: str, key: str) -> httpx.Response:
    return httpx.post(url + RESET, headers={"authorization": f"Bearer {key}"}, timeout=10)


@pytest.fixture
def gateway(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], tmp_path: Path
) -> ProxyServer:
    return users_gateway(upstream, proxy_factory, tmp_path, KEY_CACHE_TTL=60)


def test_holder_resets_own_key_old_dies_at_once_new_works(
    upstream: FakeUpstream, gateway: ProxyServer
) -> None:
    old = create(gateway.url, "dana")
    admin(gateway.url).patch("/admin/users/dana", json={"rpm": 30, "models": ["gpt-4o*"]})
    assert chat(gateway.url, old, model="gpt-4o-mini") == "Hi!"  # cached for 60 s
    answer = reset(gateway.url, old)
    assert answer.status_code == 200
    body = answer.json()
    new = body["key"]
    assert new.startswith("aifd-") and new != old
    assert (body["name"], body["rpm"], body["models"]) == ("dana", 30, ["gpt-4o*"])
    assert body["key_hint"] == "aifd-..." + new[-4:]
    assert refused(gateway.url, old)
    assert chat(gateway.url, new, model="gpt-4o-mini") == "Hi!"
    assert all(RESET not in r.path for r in upstream.requests)  # never forwarded
    again = reset(gateway.url, old)
    assert again.status_code == 401 and "not valid" in again.json()["error"]["message"]


@pytest.mark.parametrize(
    ("headers", "wanted"),
    [
        ({}, "Authorization: Bearer aifd-"),
        ({"authorization": f"Bearer {TOKEN}"}, "Authorization: Bearer aifd-"),
        ({"authorization": "Bearer sk-real-1"}, "Authorization: Bearer aifd-"),
        ({"authorization": "Bearer aifd-" + "x" * 43}, "not valid"),
    ],
)
def test_reset_without_a_valid_issued_key_is_401(
    upstream: FakeUpstream, gateway: ProxyServer, headers: dict[str, str], wanted: str
) -> None:
    create(gateway.url, "erin")
    answer = httpx.post(gateway.url + RESET, headers=headers, timeout=10)
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "authentication_error" and wanted in error["message"]
    assert upstream.requests == []


def test_expired_key_cannot_renew_itself(gateway: ProxyServer) -> None:
    api = admin(gateway.url)
    key = api.post("/admin/users", json={"name": "fay"}).json()["key"]
    api.patch("/admin/users/fay", json={"expires_at": "2000-01-01T00:00:00Z"})
    answer = reset(gateway.url, key)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "key_expired"


def test_other_methods_and_paths_are_openai_shaped_errors(gateway: ProxyServer) -> None:
    key = create(gateway.url, "gus")
    wrong_method = httpx.get(gateway.url + RESET, headers={"authorization": f"Bearer {key}"})
    assert wrong_method.status_code == 405 and "use POST" in wrong_method.json()["error"]["message"]
    elsewhere = httpx.post(
        gateway.url + "/v1/aifd/other", headers={"authorization": f"Bearer {key}"}
    )
    assert elsewhere.status_code == 404 and RESET in elsewhere.json()["error"]["message"]
    assert chat(gateway.url, key) == "Hi!"  # neither call touched the key


def test_served_without_admin_token_and_the_reset_reaches_every_instance(
    upstream: FakeUpstream, redis_url: str, tmp_path: Path
) -> None:
    upstream.handler = usage_handler
    env = {
        "OPENAI_BASE_URL": upstream.url,
        "OPENAI_API_KEY": "sk-real",
        "STORE_URL": redis_url,
        "KEY_CACHE_TTL": "60",
        "ALLOW_OPEN_ACCESS": "true",
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    with aifd_instance(env, tmp_path) as (a, _), aifd_instance(env, tmp_path) as (b, _):
        key = aifd_users(tmp_path, "add", "hal", "--store", redis_url, "--json")["key"]
        assert chat(a, key) == "Hi!" and chat(b, key) == "Hi!"
        answer = reset(a, key)
        assert answer.status_code == 200
        within(0.5, lambda: refused(b, key))
        assert chat(b, answer.json()["key"]) == "Hi!"
