"""The dashboard over HTTP: sign-in, the cookie, CSRF on the /admin API, no data unsigned."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ai_forward.app import Gateway
from ai_forward.settings import Settings
from tests.fakes import FakeUpstream, ProxyServer
from tests.users.fakes import TOKEN, admin, chat, create, users_gateway


@pytest.fixture
def gateway(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], tmp_path: Path
) -> ProxyServer:
    return users_gateway(
        upstream,
        proxy_factory,
        tmp_path,
        OPENAI_API_KEY="sk-real-dashboard-1",
        USAGE_FLUSH_INTERVAL=0.1,
    )


@pytest.fixture
def client(gateway: ProxyServer) -> Iterator[httpx.Client]:
    """A client signed in to the dashboard (it keeps the cookie)."""
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        answer = client.post("/admin/ui/login", data={"token": TOKEN})
        assert answer.status_code == 303 and answer.headers["location"] == "/admin/ui/"
        yield client


def csrf_of(page: str) -> str:
    return page.split('<meta name="csrf" content="', 1)[1].split('"', 1)[0]


def test_without_a_session_every_page_is_the_sign_in_page_and_no_data(
    gateway: ProxyServer,
) -> None:
    create(gateway.url, "hidden-user")
    for path in ("/admin/ui/", "/admin/ui/users", "/admin/ui/chats", "/admin/ui/nowhere"):
        for cookies in ({}, {"aifd_admin": "1.2.3"}, {"aifd_admin": "forged"}):
            page = httpx.get(gateway.url + path, cookies=cookies)
            assert page.status_code == 401 and 'name="token"' in page.text
            assert "hidden-user" not in page.text
    wrong = httpx.post(gateway.url + "/admin/ui/login", data={"token": TOKEN + "x"})
    assert wrong.status_code == 401 and "Wrong admin token" in wrong.text
    assert "set-cookie" not in wrong.headers


def test_sign_in_sets_an_http_only_strict_cookie_and_pages_show_data(
    gateway: ProxyServer,
) -> None:
    answer = httpx.post(gateway.url + "/admin/ui/login", data={"token": TOKEN})
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert TOKEN not in cookie and TOKEN not in answer.headers["location"]
    create(gateway.url, "shown-user", budget="2/month")
    value = answer.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    users = httpx.get(gateway.url + "/admin/ui/users", cookies={"aifd_admin": value})
    assert users.status_code == 200 and "shown-user" in users.text and "$2/month" in users.text
    policy = users.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert users.headers["cache-control"] == "no-store"
    assert "http://" not in users.text.replace(gateway.url, "")  # nothing fetched elsewhere


def test_admin_api_takes_the_cookie_only_with_its_csrf_token(
    gateway: ProxyServer, client: httpx.Client
) -> None:
    token = csrf_of(client.get("/admin/ui/users").text)
    refused = client.post("/admin/users", json={"name": "no-csrf"})
    assert refused.status_code == 401 and "X-CSRF-Token" in refused.json()["error"]["message"]
    forged = client.post("/admin/users", json={"name": "x"}, headers={"x-csrf-token": "0" * 64})
    assert forged.status_code == 401
    made = client.post("/admin/users", json={"name": "ok"}, headers={"x-csrf-token": token})
    assert made.status_code == 201 and made.json()["key"].startswith("aifd-")
    assert admin(gateway.url).get("/admin/users/ok").status_code == 200


def test_sign_in_from_another_origin_is_refused(gateway: ProxyServer) -> None:
    answer = httpx.post(
        gateway.url + "/admin/ui/login",
        data={"token": TOKEN},
        headers={"origin": "https://evil.example"},
    )
    assert answer.status_code == 403 and "set-cookie" not in answer.headers


def test_sign_out_needs_the_csrf_token_and_clears_the_cookie(client: httpx.Client) -> None:
    token = csrf_of(client.get("/admin/ui/").text)
    assert client.post("/admin/ui/logout", data={"csrf": "nope"}).status_code == 403
    out = client.post("/admin/ui/logout", data={"csrf": token})
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    assert client.get("/admin/ui/").status_code == 401


def test_errors_and_refusals_are_counted_only_while_the_page_is_open(
    gateway: ProxyServer,
) -> None:
    key = create(gateway.url, "vic")
    httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": "Bearer aifd-x"})
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        client.post("/admin/ui/login", data={"token": TOKEN})
        first = client.get("/admin/ui/").text
        assert chat(gateway.url, key) == "Hi!"
        httpx.post(gateway.url + "/v1/chat/completions", headers={"authorization": "Bearer aifd-y"})
        page = client.get("/admin/ui/").text
    assert "aifd-x" not in first and "not valid" not in first
    errors = page.split("<h2>Latest errors</h2>", 1)[1]
    assert errors.count("<tr>") == 2  # the header and the one refusal made while open
    assert "this aifd- key is not valid" in errors and "401" in errors


def test_no_dashboard_and_no_hook_without_admin_token(upstream: FakeUpstream) -> None:
    gateway = Gateway(Settings.from_env({"OPENAI_BASE_URL": upstream.url}))
    assert not any(prefix == "/admin/ui" for prefix, _ in gateway.mounts)
    with_token = Gateway(Settings.from_env({"OPENAI_BASE_URL": upstream.url, "ADMIN_TOKEN": TOKEN}))
    assert "/admin/ui" in [prefix for prefix, _ in with_token.mounts]
    hooks = [type(h).__name__ for h in gateway.forwarder.hooks]
    assert "Activity" not in hooks


@pytest.mark.parametrize(
    ("trusted", "secure"),
    [("127.0.0.1", True), ("10.9.8.7", False), (None, False)],
    ids=["trusted-proxy", "untrusted-peer", "no-trusted-proxies"],
)
def test_cookie_is_secure_behind_a_trusted_tls_proxy_only(
    upstream: FakeUpstream,
    proxy_factory: Callable[..., ProxyServer],
    tmp_path: Path,
    trusted: str | None,
    secure: bool,
) -> None:
    extra = {"TRUSTED_PROXIES": trusted} if trusted else {}
    gateway = users_gateway(upstream, proxy_factory, tmp_path, **extra)
    # What nginx in front of the gateway sends when it terminated TLS (deploy.md).
    https = {"x-forwarded-proto": "https", "origin": "https://gw.example", "host": "gw.example"}
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        answer = client.post("/admin/ui/login", data={"token": TOKEN}, headers=https)
        assert answer.status_code == 303
        assert ("; Secure" in answer.headers["set-cookie"]) is secure
        # httpx keeps a Secure cookie for https only: hand it over as the browser would.
        value = answer.headers["set-cookie"].split(";")[0].split("=", 1)[1]
        client.cookies.set("aifd_admin", value)
        page = client.get("/admin/ui/", headers=https)
        assert page.status_code == 200
        out = client.post("/admin/ui/logout", data={"csrf": csrf_of(page.text)}, headers=https)
        assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
        assert ("; Secure" in out.headers["set-cookie"]) is secure
    plain = httpx.post(gateway.url + "/admin/ui/login", data={"token": TOKEN})
    assert "Secure" not in plain.headers["set-cookie"]  # plain HTTP, no proxy header
