"""The /admin API over real sockets: every call, and every way to get it wrong."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ai_forward import Settings
from ai_forward.settings import SettingsError
from tests.fakes import FakeUpstream, ProxyServer
from tests.users.fakes import TOKEN, admin

CALLS = [
    ("POST", "/admin/users", {"name": "x"}),
    ("GET", "/admin/users", None),
    ("GET", "/admin/users/x", None),
    ("PATCH", "/admin/users/x", {"rpm": 1}),
    ("POST", "/admin/users/x/reset", None),
    ("DELETE", "/admin/users/x", None),
    ("GET", "/admin/usage", None),
]


@pytest.fixture
def gateway(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], tmp_path: Path
) -> ProxyServer:
    return proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real-1",
        EXTRA_BASE_URL=upstream.url,
        EXTRA_ROUTE_PREFIX="/other",
        ADMIN_TOKEN=TOKEN,
        STORE_URL=f"sqlite:///{tmp_path}/users.db",
    )


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_every_call_round_trip(gateway: ProxyServer) -> None:
    api = admin(gateway.url)
    created = api.post(
        "/admin/users",
        json={
            "name": "alice",
            "rpm": 60,
            "tpm": 10000,
            "models": ["gpt-4o-mini", "gpt-4o*"],
            "routes": ["/", "other/"],
            "expires_at": "2099-01-01T00:00:00Z",
        },
    )
    assert created.status_code == 201
    body = created.json()
    key = body["key"]
    assert key.startswith("aifd-") and len(key) >= 5 + 43
    assert body["key_hint"] == "aifd-..." + key[-4:]
    assert body["routes"] == ["/", "/other"]
    assert body["expires_at"] == "2099-01-01T00:00:00Z"

    listed = api.get("/admin/users").json()
    assert [u["name"] for u in listed["data"]] == ["alice"]
    assert "key" not in listed["data"][0] and key not in str(listed)

    shown = api.get("/admin/users/alice").json()
    assert shown["rpm"] == 60 and shown["usage"]["data"] == [] and key not in str(shown)

    patched = api.patch("/admin/users/alice", json={"rpm": None, "models": [], "tpm": 5})
    assert patched.status_code == 200
    assert (patched.json()["rpm"], patched.json()["tpm"], patched.json()["models"]) == (None, 5, [])
    assert api.get("/admin/users/alice").json()["tpm"] == 5

    reset = api.post("/admin/users/alice/reset").json()
    assert reset["key"].startswith("aifd-") and reset["key"] != key
    assert reset["tpm"] == 5

    assert api.delete("/admin/users/alice").json() == {"name": "alice", "deleted": True}
    assert api.get("/admin/users").json()["data"] == []
    usage = api.get("/admin/usage", params={"since": "2020-01-01"})
    assert usage.status_code == 200 and usage.json()["since"] == "2020-01-01"


@pytest.mark.parametrize(("method", "path", "body"), CALLS)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong-token-0123456789"},
        {"authorization": f"Basic {TOKEN}"},
        {"x-api-key": TOKEN},
        {"authorization": f"Bearer {TOKEN}x"},
    ],
)
def test_calls_without_the_admin_token_are_401(
    gateway: ProxyServer, method: str, path: str, body: Any, headers: dict[str, str]
) -> None:
    admin(gateway.url).post("/admin/users", json={"name": "x"})
    response = httpx.request(method, gateway.url + path, json=body, headers=headers)
    assert response.status_code == 401
    error = error_of(response)
    assert error["type"] == "authentication_error" and "ADMIN_TOKEN" in error["message"]
    assert admin(gateway.url).get("/admin/users/x").json()["rpm"] is None  # nothing changed


def test_token_in_the_url_is_not_accepted(gateway: ProxyServer) -> None:
    response = httpx.get(gateway.url + "/admin/users", params={"token": TOKEN})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": 5}, "name"),
        ({"name": "a", "rpm": "10"}, "rpm"),
        ({"name": "a", "rpm": 0}, "rpm"),
        ({"name": "a", "tpm": -1}, "tpm"),
        ({"name": "a", "tpm": True}, "tpm"),
        ({"name": "a", "models": "gpt-4o"}, "models"),
        ({"name": "a", "models": [""]}, "models"),
        ({"name": "a", "models": [1]}, "models"),
        ({"name": "a", "routes": ["/nowhere"]}, "routes"),
        ({"name": "a", "expires_at": "soon"}, "expires_at"),
        ({"name": "a", "expires_at": 1e20}, "expires_at"),
        ({"name": "a", "expires_at": -1}, "expires_at"),
        ({"name": "a", "expires_at": 253402300800}, "expires_at"),
        ({"name": "a", "expires_at": "NaN"}, "expires_at"),
        ({"name": "a", "expires_at": "1969-12-31T23:59:59Z"}, "expires_at"),
        ({"name": "a", "colour": "red"}, "colour"),
        ([1, 2], "body"),
        ("not json", "body"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(gateway: ProxyServer, body: Any, field: str) -> None:
    api = admin(gateway.url)
    if body == "not json":
        response = api.post("/admin/users", content=b"{nope")
    else:
        response = api.post("/admin/users", json=body)
    assert response.status_code == 422
    error = error_of(response)
    assert error["param"] == field and error["type"] == "invalid_request_error"
    assert api.get("/admin/users").json()["data"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "b"}, "name"),
        ({"rpm": 1.5}, "rpm"),
        ({"routes": "/"}, "routes"),
        ({"x": 1}, "x"),
        ({"expires_at": 1e20}, "expires_at"),
    ],
)
def test_bad_changes_are_422_and_change_nothing(
    gateway: ProxyServer, body: Any, field: str
) -> None:
    api = admin(gateway.url)
    api.post("/admin/users", json={"name": "a", "rpm": 3})
    response = api.patch("/admin/users/a", json=body)
    assert response.status_code == 422 and error_of(response)["param"] == field
    assert api.get("/admin/users/a").json()["rpm"] == 3


def test_oversized_body_is_refused(gateway: ProxyServer) -> None:
    response = admin(gateway.url).post("/admin/users", json={"name": "a", "models": ["m" * 70000]})
    assert response.status_code == 422 and error_of(response)["param"] == "body"


@pytest.mark.parametrize(("method", "path", "body"), CALLS[2:6])
def test_unknown_users_are_404(gateway: ProxyServer, method: str, path: str, body: Any) -> None:
    response = admin(gateway.url).request(method, path.replace("/x", "/ghost"), json=body)
    assert response.status_code == 404
    assert "ghost" in error_of(response)["message"]


def test_duplicate_name_is_409_and_keeps_the_first_key(gateway: ProxyServer) -> None:
    api = admin(gateway.url)
    first = api.post("/admin/users", json={"name": "dup", "rpm": 1})
    second = api.post("/admin/users", json={"name": "dup", "rpm": 2})
    assert second.status_code == 409 and error_of(second)["param"] == "name"
    assert api.get("/admin/users/dup").json()["key_hint"] == first.json()["key_hint"]


def test_unknown_admin_paths_and_methods_answer_in_openai_shape(gateway: ProxyServer) -> None:
    api = admin(gateway.url)
    missing = api.get("/admin/nothing")
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
    wrong = api.put("/admin/users")
    assert wrong.status_code == 405 and error_of(wrong)["code"] == "method_not_allowed"


def test_bad_since_is_422(gateway: ProxyServer) -> None:
    response = admin(gateway.url).get("/admin/usage", params={"since": "last week"})
    assert response.status_code == 422 and error_of(response)["param"] == "since"


def test_without_admin_token_admin_paths_are_just_forwarded(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], tmp_path: Path
) -> None:
    proxy = proxy_factory(OPENAI_BASE_URL=upstream.url, STORE_URL=f"sqlite:///{tmp_path}/u.db")
    response = httpx.get(proxy.url + "/admin/users", headers={"authorization": f"Bearer {TOKEN}"})
    assert response.json()["path"] == "/admin/users"
    assert upstream.last.path == "/admin/users"


def test_short_admin_token_stops_start_up() -> None:
    with pytest.raises(SettingsError, match="ADMIN_TOKEN"):
        Settings.from_env({"ADMIN_TOKEN": "short"})


@pytest.mark.parametrize("url", ["postgres://db/x", "sqlite://", "redis://", "aifd.db"])
def test_bad_store_url_stops_start_up(url: str) -> None:
    with pytest.raises(SettingsError, match="STORE_URL"):
        Settings.from_env({"STORE_URL": url})


def test_a_gateway_that_issues_keys_may_listen_publicly_without_forward_keys() -> None:
    env = {"OPENAI_API_KEY": "sk-real", "HOST": "0.0.0.0"}
    assert Settings.from_env(env).open_access_problem() is not None
    assert Settings.from_env({**env, "ADMIN_TOKEN": TOKEN}).open_access_problem() is None
