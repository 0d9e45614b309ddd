"""Issued keys on the request path: through the SDK to a fake upstream and back."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from ai_forward.app import Gateway
from ai_forward.exchange import Exchange, Principal
from ai_forward.settings import Settings
from tests.fakes import FakeUpstream, ProxyServer, free_port
from tests.users.fakes import (
    PLAIN,
    STREAMED,
    TOKEN,
    admin,
    chat,
    create,
    sdk,
    serving,
    usage_handler,
    users_gateway,
)


@pytest.fixture
def gateway(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], tmp_path: Path
) -> ProxyServer:
    upstream.handler = usage_handler
    return proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real-1,sk-real-2",
        FORWARD_KEY="fk-test",
        EXTRA_BASE_URL=upstream.url,
        EXTRA_ROUTE_PREFIX="/other",
        EXTRA_API_KEY="sk-other",
        ADMIN_TOKEN=TOKEN,
        STORE_URL=f"sqlite:///{tmp_path}/users.db",
        KEY_CACHE_TTL=60,
        USAGE_FLUSH_INTERVAL=60,
    )


def test_issued_key_works_through_the_sdk_with_a_real_key_upstream(
    upstream: FakeUpstream, gateway: ProxyServer
) -> None:
    key = create(gateway.url, "alice")
    assert chat(gateway.url, key) == "Hi!"
    assert chat(gateway.url, key, stream=True) == "Hi!"
    seen = [r.headers["authorization"] for r in upstream.requests]
    assert seen == ["Bearer sk-real-1", "Bearer sk-real-2"]
    assert all(key not in str(r.raw_headers) + r.body.decode() for r in upstream.requests)


def test_unknown_key_is_401_with_a_clear_message(
    upstream: FakeUpstream, gateway: ProxyServer
) -> None:
    with pytest.raises(openai.AuthenticationError, match="not valid") as caught:
        chat(gateway.url, "aifd-" + "x" * 43)
    assert caught.value.code == "invalid_api_key"
    assert upstream.requests == []


def test_reset_key_is_refused_at_once_and_the_new_one_works(gateway: ProxyServer) -> None:
    old = create(gateway.url, "bob")
    assert chat(gateway.url, old) == "Hi!"  # now cached for KEY_CACHE_TTL=60 s
    new = admin(gateway.url).post("/admin/users/bob/reset").json()["key"]
    with pytest.raises(openai.AuthenticationError):
        chat(gateway.url, old)
    assert chat(gateway.url, new) == "Hi!"


def test_deleted_key_is_refused_at_once(gateway: ProxyServer) -> None:
    key = create(gateway.url, "carol")
    assert chat(gateway.url, key) == "Hi!"
    admin(gateway.url).delete("/admin/users/carol")
    with pytest.raises(openai.AuthenticationError):
        chat(gateway.url, key)


def test_model_allowlist_with_patterns_and_fan_out(
    upstream: FakeUpstream, gateway: ProxyServer
) -> None:
    key = create(gateway.url, "dave", models=["gpt-4o-mini", "claude-*"])
    assert chat(gateway.url, key, model="gpt-4o-mini") == "Hi!"
    assert chat(gateway.url, key, model="claude-3-haiku") == "Hi!"
    for refused in ("gpt-4o", "gpt-4o-mini,o1"):
        with pytest.raises(openai.PermissionDeniedError) as caught:
            chat(gateway.url, key, model=refused)
        assert caught.value.code == "model_not_allowed"
        assert "'gpt-4o'" in str(caught.value) or "'o1'" in str(caught.value)
        assert "gpt-4o-mini, claude-*" in str(caught.value)
    assert len(upstream.requests) == 2
    assert sdk(gateway.url, key).models.list() is not None  # no model named: allowed


def test_model_allowlist_covers_multipart_uploads(
    upstream: FakeUpstream, gateway: ProxyServer
) -> None:
    key = create(gateway.url, "mo", models=["whisper-1"])
    audio = ("a.wav", b"RIFF....", "audio/wav")
    client = sdk(gateway.url, key)
    assert client.audio.transcriptions.create(model="whisper-1", file=audio) is not None
    with pytest.raises(openai.PermissionDeniedError, match="'whisper-2'"):
        client.audio.transcriptions.create(model="whisper-2", file=audio)
    assert len(upstream.requests) == 1


def test_route_allowlist(upstream: FakeUpstream, gateway: ProxyServer) -> None:
    key = create(gateway.url, "erin", routes=["/other"])
    assert sdk(gateway.url, key, "/other/v1").models.list() is not None
    assert upstream.last.headers["authorization"] == "Bearer sk-other"
    with pytest.raises(openai.PermissionDeniedError, match="'/'"):
        chat(gateway.url, key)


def test_expired_key_is_refused(gateway: ProxyServer) -> None:
    key = create(gateway.url, "frank", expires_at=time.time() + 60)
    assert chat(gateway.url, key) == "Hi!"
    # A date alone lasts through that UTC day.
    admin(gateway.url).patch("/admin/users/frank", json={"expires_at": "2020-01-01"})
    with pytest.raises(
        openai.AuthenticationError, match="expired at 2020-01-02T00:00:00Z"
    ) as caught:
        chat(gateway.url, key)
    assert caught.value.code == "key_expired"


def test_changed_limits_apply_at_once(gateway: ProxyServer) -> None:
    key = create(gateway.url, "gina")
    assert chat(gateway.url, key, model="o1") == "Hi!"
    admin(gateway.url).patch("/admin/users/gina", json={"models": ["gpt-4o-mini"]})
    with pytest.raises(openai.PermissionDeniedError):
        chat(gateway.url, key, model="o1")


def test_forward_keys_and_clients_own_keys_still_work(
    upstream: FakeUpstream, gateway: ProxyServer
) -> None:
    assert chat(gateway.url, "fk-test") == "Hi!"
    assert upstream.last.headers["authorization"] == "Bearer sk-real-1"
    assert chat(gateway.url, "sk-my-own") == "Hi!"
    assert upstream.last.headers["authorization"] == "Bearer sk-my-own"


def test_without_forward_keys_keyless_requests_are_refused_when_keys_are_issued(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], tmp_path: Path
) -> None:
    env = {"OPENAI_BASE_URL": upstream.url, "OPENAI_API_KEY": "sk-real-1"}
    store = f"sqlite:///{tmp_path}/users.db"
    closed = proxy_factory(**env, ADMIN_TOKEN=TOKEN, STORE_URL=store)
    response = httpx.get(closed.url + "/v1/models")
    assert response.status_code == 401
    assert "aifd-" in response.json()["error"]["message"]
    assert upstream.requests == []
    opened = proxy_factory(**env, ADMIN_TOKEN=TOKEN, STORE_URL=store, ALLOW_OPEN_ACCESS="true")
    assert httpx.get(opened.url + "/v1/models").status_code == 200
    assert upstream.last.headers["authorization"] == "Bearer sk-real-1"


def test_usage_totals_match_the_upstreams_usage(
    upstream: FakeUpstream, gateway: ProxyServer
) -> None:
    key = create(gateway.url, "hana")
    other = create(gateway.url, "ivan")
    for _ in range(2):
        chat(gateway.url, key)
    chat(gateway.url, key, stream=True)
    chat(gateway.url, key, model="gpt-4o", stream=True)
    chat(gateway.url, other)
    # the client did not ask for usage in the stream: it gets none, the upstream was asked
    assert upstream.last.json().get("stream_options") is None
    assert upstream.requests[2].json()["stream_options"] == {"include_usage": True}

    shown = admin(gateway.url).get("/admin/users/hana").json()["usage"]
    rows = {r["model"]: r for r in shown["data"]}
    mini = rows["gpt-4o-mini"]
    assert (mini["requests"], mini["prompt_tokens"], mini["completion_tokens"]) == (
        3,
        2 * PLAIN[0] + STREAMED[0],
        2 * PLAIN[1] + STREAMED[1],
    )
    assert (rows["gpt-4o"]["prompt_tokens"], rows["gpt-4o"]["completion_tokens"]) == STREAMED
    assert shown["totals"]["hana"] == {
        "requests": 4,
        "prompt_tokens": 2 * PLAIN[0] + 2 * STREAMED[0],
        "completion_tokens": 2 * PLAIN[1] + 2 * STREAMED[1],
        "total_tokens": 2 * sum(PLAIN) + 2 * sum(STREAMED),
        "cached_tokens": 0,
        "cost": 0.0,  # no MODEL_PRICES here
    }
    everyone = admin(gateway.url).get("/admin/usage").json()
    assert set(everyone["totals"]) == {"hana", "ivan"}
    assert everyone["totals"]["ivan"]["total_tokens"] == sum(PLAIN)
    only = admin(gateway.url).get("/admin/usage", params={"user": "ivan"}).json()
    assert [r["user"] for r in only["data"]] == ["ivan"]


def test_streamed_usage_is_hidden_unless_the_client_asked(gateway: ProxyServer) -> None:
    key = create(gateway.url, "jo")
    parts = list(
        sdk(gateway.url, key).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert all(p.usage is None for p in parts)
    asked = list(
        sdk(gateway.url, key).chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert asked[-1].usage is not None and asked[-1].usage.prompt_tokens == STREAMED[0]


def test_keys_are_stored_hashed(gateway: ProxyServer, tmp_path: Path) -> None:
    key = create(gateway.url, "kim", models=["m"])
    reset = admin(gateway.url).post("/admin/users/kim/reset").json()["key"]
    chat(gateway.url, reset, model="m")
    admin(gateway.url).get("/admin/usage")  # flushes usage
    with sqlite3.connect(tmp_path / "users.db") as db:
        rows = [str(r) for t in ("users", "usage") for r in db.execute(f"SELECT * FROM {t}")]
    assert rows and "kim" in "".join(rows)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("users.db*"))
    for secret in (key, reset, key[5:], reset[5:]):
        assert secret not in "".join(rows)
        assert secret.encode() not in raw


def test_unreachable_store_is_503_for_issued_keys_only(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    env = {"OPENAI_BASE_URL": upstream.url, "OPENAI_API_KEY": "sk-real", "FORWARD_KEY": "fk"}
    proxy = proxy_factory(**env, ADMIN_TOKEN=TOKEN, STORE_URL=nowhere)
    with pytest.raises(openai.InternalServerError, match="user store is unreachable") as caught:
        chat(proxy.url, "aifd-" + "x" * 43)
    assert caught.value.status_code == 503
    assert chat(proxy.url, "fk") == "Hello!"
    response = admin(proxy.url).get("/admin/users")
    assert response.status_code == 503 and response.json()["error"]["code"] == "service_unavailable"


class PrincipalRecorder:
    """A hook after UsersHook, as the rate limiter is: records what it is given."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Principal | None]] = []

    async def before(self, ex: Exchange) -> None:
        self.seen.append((ex.key_kind, ex.principal))

    async def after(self, ex: Exchange) -> None:
        return None


def test_later_hooks_see_the_users_principal(upstream: FakeUpstream, tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "OPENAI_BASE_URL": upstream.url,
            "OPENAI_API_KEY": "sk-real",
            "FORWARD_KEY": "fk",
            "ADMIN_TOKEN": TOKEN,
            "STORE_URL": f"sqlite:///{tmp_path}/users.db",
        }
    )
    gateway = Gateway(settings)
    recorder = PrincipalRecorder()
    gateway.forwarder.hooks = (*gateway.forwarder.hooks, recorder)
    with serving(gateway) as url:
        key = create(url, "lena", rpm=30, tpm=4000, models=["m*"], routes=["/"])
        chat(url, key, model="m1")
        chat(url, "fk", model="m1")
    assert recorder.seen == [
        ("user", Principal("lena", 30, 4000, ("m*",), ("/",))),
        ("forward", None),
    ]


@pytest.fixture
def limits_off(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], tmp_path: Path
) -> ProxyServer:
    """Users and nothing else: no REQ_RATE_LIMIT, TPM_LIMIT or GLOBAL_RATE_LIMIT."""
    return users_gateway(upstream, proxy_factory, tmp_path)


def test_users_rpm_holds_without_any_server_wide_limit(
    upstream: FakeUpstream, limits_off: ProxyServer
) -> None:
    key = create(limits_off.url, "rita", rpm=2)
    assert chat(limits_off.url, key) == "Hi!"
    assert chat(limits_off.url, key) == "Hi!"
    with pytest.raises(openai.RateLimitError, match=r"2 requests per 1m0s .*user rita") as caught:
        chat(limits_off.url, key)
    assert caught.value.response.headers["x-ratelimit-limit-requests"] == "2"
    assert len(upstream.requests) == 2
    other = create(limits_off.url, "sam")  # no limit of its own: not limited
    assert [chat(limits_off.url, other) for _ in range(3)] == ["Hi!"] * 3


def test_users_tpm_holds_without_any_server_wide_limit(
    upstream: FakeUpstream, limits_off: ProxyServer
) -> None:
    # One reply uses 15 tokens (PLAIN); the second request no longer fits in 20 a minute.
    key = create(limits_off.url, "tina", tpm=20)
    assert chat(limits_off.url, key) == "Hi!"
    with pytest.raises(openai.RateLimitError, match="token rate limit reached: 20 tokens"):
        chat(limits_off.url, key)
    assert len(upstream.requests) == 1
