"""`/readyz` checks what the instance depends on; `/healthz` stays a cheap liveness answer."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.fakes import FakeUpstream, ProxyServer
from tests.redis_server import RedisServer


def wait_status(url: str, status: int, seconds: float = 10) -> httpx.Response:
    deadline = time.monotonic() + seconds
    response = httpx.get(url + "/readyz", timeout=5)
    while response.status_code != status and time.monotonic() < deadline:
        time.sleep(0.2)
        response = httpx.get(url + "/readyz", timeout=5)
    return response


def test_readyz_is_503_naming_redis_while_it_is_down_and_200_once_back(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    redis = RedisServer().start()
    try:
        proxy = proxy_factory(
            OPENAI_BASE_URL=upstream.url,
            REQ_RATE_LIMIT="100/minute",
            RATE_LIMIT_BACKEND=redis.url,
            STORE_URL=redis.url,
        )
        ready = wait_status(proxy.url, 200)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"user store (redis)": "ok", "rate limit storage": "ok"}

        redis.pause()
        down = wait_status(proxy.url, 503)
        assert down.status_code == 503
        error = down.json()["error"]
        assert error["code"] == "not_ready" and error["type"] == "server_error"
        assert "rate limit storage" in error["message"] and "user store (redis)" in error["message"]
        assert httpx.get(proxy.url + "/healthz").status_code == 200

        redis.start()
        back = wait_status(proxy.url, 200)
        assert back.status_code == 200, back.text
    finally:
        redis.stop()


def test_readyz_names_a_chat_log_writer_that_cannot_write(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], tmp_path: Path
) -> None:
    proxy = proxy_factory(OPENAI_BASE_URL=upstream.url, LOG_CHAT="true", LOG_DIR=str(tmp_path))
    assert httpx.get(proxy.url + "/readyz").json()["checks"]["chat log writer"] == "ok"
    (tmp_path / "chat" / "openai").write_text("a file where the route's folder should be")
    httpx.post(
        proxy.url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    down = wait_status(proxy.url, 503)
    assert down.status_code == 503
    assert "chat log writer: cannot write to" in down.json()["error"]["message"]
