"""Helpers for the users tests: an upstream that reports usage, and an admin client."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import uvicorn
from aiohttp import web

from ai_forward.types import ASGIApp
from tests.fakes import (
    FakeUpstream,
    ProxyServer,
    Recorded,
    chunk,
    completion,
    free_port,
    json_response,
    sse,
    stream_response,
)

TOKEN = "admin-token-0123456789"
REPO = Path(__file__).resolve().parents[2]
# Non-streamed replies report 11 + 4 tokens; streamed ones, when asked, 7 + 3.
PLAIN = (11, 4)
STREAMED = (7, 3)


async def usage_handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
    """Chat completions that report usage as OpenAI does (streams only when asked)."""
    if not rec.path.endswith("/chat/completions"):
        return await json_response({"object": "list", "data": []})
    body = rec.json()
    model = body.get("model", "m")
    if not body.get("stream"):
        prompt, done = PLAIN
        reply = completion("Hi!", model=model, prompt_tokens=prompt, completion_tokens=done)
        return await json_response(reply)
    events: list[Any] = [chunk(role="assistant", content="", model=model), chunk("Hi!")]
    events.append(chunk(finish="stop", model=model))
    if (body.get("stream_options") or {}).get("include_usage"):
        prompt, done = STREAMED
        usage = {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}
        events.append({"id": "c", "object": "chat.completion.chunk", "model": model,
                       "choices": [], "usage": usage})  # fmt: skip
    return await stream_response(request, sse(*events))


def admin(url: str, token: str = TOKEN) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=10)


def sdk(url: str, key: str, prefix: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=url + prefix, api_key=key, max_retries=0)


def chat(url: str, key: str, model: str = "gpt-4o-mini", stream: bool = False) -> str:
    """One chat completion through the SDK; the reply's text."""
    messages: Any = [{"role": "user", "content": "hi"}]
    # Closed at once: the gateway's lifespan freezes the collector's view of this process,
    # so a client left to the collector would keep its sockets open for the whole run.
    with sdk(url, key) as client:
        if not stream:
            reply = client.chat.completions.create(model=model, messages=messages)
            return reply.choices[0].message.content or ""
        parts = client.chat.completions.create(model=model, messages=messages, stream=True)
        return "".join(p.choices[0].delta.content or "" for p in parts if p.choices)


def create(url: str, name: str, **fields: Any) -> str:
    """Create a user through the admin API; its key."""
    with admin(url) as client:
        response = client.post("/admin/users", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


@contextlib.contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """`app` under uvicorn on a free port, in a thread; yields its URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def users_gateway(
    upstream: FakeUpstream,
    proxy_factory: Callable[..., ProxyServer],
    tmp_path: Path,
    **extra: object,
) -> ProxyServer:
    """The gateway with issued users on a fresh SQLite store and no server-wide limits;
    `extra` settings on top (or in place of these)."""
    upstream.handler = usage_handler
    settings: dict[str, object] = {
        "OPENAI_BASE_URL": upstream.url,
        "OPENAI_API_KEY": "sk-real-1",
        "ADMIN_TOKEN": TOKEN,
        "STORE_URL": f"sqlite:///{tmp_path}/users.db",
    }
    return proxy_factory(**{**settings, **extra})
