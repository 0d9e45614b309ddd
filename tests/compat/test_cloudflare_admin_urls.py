"""ai-proxy-cloudflare's admin URLs (/<TOKEN>/register/<user>, reset, delete) are served
locally as the /admin API: never forwarded upstream, the token in no log line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from tests.fakes import FakeUpstream, ProxyServer

TOKEN = "cf-style-admin-token-0123456789"


def test_admin_urls_of_ai_proxy_cloudflare_manage_users_and_are_never_forwarded(
    tmp_path: Path,
    upstream: FakeUpstream,
    proxy_factory: Callable[..., ProxyServer],
    loguru_lines: list[str],
) -> None:
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real-cf",
        ADMIN_TOKEN=TOKEN,
        STORE_URL=f"sqlite:///{tmp_path}/users.db",
    )
    created = httpx.post(f"{proxy.url}/{TOKEN}/register/janlay")
    assert created.status_code == 201, created.text
    first_key = created.json()["key"]
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    auth = {"authorization": f"Bearer {first_key}"}
    assert (
        httpx.post(proxy.url + "/v1/chat/completions", json=chat, headers=auth).status_code == 200
    )
    assert upstream.last.headers["authorization"] == "Bearer sk-real-cf"

    reset = httpx.post(f"{proxy.url}/{TOKEN}/reset/janlay")
    assert reset.status_code == 200, reset.text
    assert reset.json()["key"] != first_key
    assert (
        httpx.post(proxy.url + "/v1/chat/completions", json=chat, headers=auth).status_code == 401
    )

    wrong = httpx.post(f"{proxy.url}/not-the-token-at-all-000/delete/janlay")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert httpx.delete(f"{proxy.url}/{TOKEN}/delete/janlay").status_code == 200

    assert [r.path for r in upstream.requests] == ["/v1/chat/completions"]
    assert not any(TOKEN in line for line in loguru_lines)
    assert not any("not-the-token-at-all" in line for line in loguru_lines)
