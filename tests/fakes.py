"""A fake upstream and a real proxy, each on its own free port, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from aiohttp import web

from ai_forward import Settings, create_app

Handler = Callable[[web.Request, "Recorded"], Awaitable[web.StreamResponse]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Recorded:
    """One request as the fake upstream saw it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    body: bytes
    raw_path: str = ""  # the path as it came on the request line, percent-encoding intact
    at: float = field(default_factory=time.monotonic)
    disconnected: threading.Event = field(default_factory=threading.Event)

    def json(self) -> Any:
        return orjson.loads(self.body)


def completion(content: str = "Hello!", model: str = "gpt-4o-mini", **usage: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": usage.get("prompt_tokens", 5),
            "completion_tokens": usage.get("completion_tokens", 2),
            "total_tokens": usage.get("prompt_tokens", 5) + usage.get("completion_tokens", 2),
        },
    }


def chunk(
    content: str | None = None,
    *,
    index: int = 0,
    finish: str | None = None,
    role: str | None = None,
    model: str = "gpt-4o-mini",
    **delta_extra: Any,
) -> dict[str, Any]:
    delta: dict[str, Any] = dict(delta_extra)
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }


def sse(*payloads: Any) -> list[bytes]:
    events = [b"data: " + orjson.dumps(p) + b"\n\n" for p in payloads]
    return [*events, b"data: [DONE]\n\n"]


async def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


async def stream_response(
    request: web.Request,
    events: Sequence[bytes],
    *,
    delay: float = 0.0,
    headers: Mapping[str, str] | None = None,
    cut_after: int | None = None,
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream", **(headers or {})})
    await response.prepare(request)
    for i, event in enumerate(events):
        if cut_after is not None and i == cut_after:
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write(event)
        if delay:
            await asyncio.sleep(delay)
    await response.write_eof()
    return response


async def default_handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
    """Chat completions (streamed or not); anything else echoes what it received."""
    if rec.path.endswith("/chat/completions") and rec.method == "POST":
        body = rec.json()
        if body.get("stream"):
            return await stream_response(
                request,
                sse(
                    chunk(role="assistant", content=""),
                    chunk("Hel"),
                    chunk("lo!"),
                    chunk(finish="stop"),
                ),
            )
        return await json_response(completion(), headers={"x-request-id": "req-123"})
    return await json_response(
        {"method": rec.method, "path": rec.path, "query": rec.query, "size": len(rec.body)}
    )


class FakeUpstream:
    """An aiohttp server in its own thread that records every request."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.handler: Handler = default_handler
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rec = Recorded(
            method=request.method,
            path=request.path,
            query=request.rel_url.raw_query_string,
            headers={k.lower(): v for k, v in request.headers.items()},
            raw_headers=[(k.lower(), v) for k, v in request.headers.items()],
            body=await request.read(),
            raw_path=request.rel_url.raw_path,
        )
        self.requests.append(rec)
        try:
            return await self.handler(request, rec)
        except (asyncio.CancelledError, ConnectionResetError):
            rec.disconnected.set()
            raise

    def start(self) -> FakeUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self.loop.close()  # its selector and self-pipe, else three descriptors per fake


class ProxyServer:
    """The real gateway under uvicorn in a thread."""

    def __init__(self, env: Mapping[str, str], http: str = "auto") -> None:
        self.settings = Settings.from_env(dict(env))
        self.port = free_port()
        config = uvicorn.Config(
            create_app(self.settings),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            server_header=False,
            date_header=False,
            proxy_headers=False,
            http=http,
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ProxyServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("proxy did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)


@contextlib.contextmanager
def running_proxy(env: Mapping[str, str], http: str = "auto") -> Iterator[ProxyServer]:
    proxy = ProxyServer(env, http).start()
    try:
        yield proxy
    finally:
        proxy.stop()
