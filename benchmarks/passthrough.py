"""The yardstick: a bare reverse proxy (raw ASGI + one aiohttp session), no features at all.

python benchmarks/passthrough.py PORT UPSTREAM_URL [WORKERS] [--client builtin]

With `--client builtin` it sends through ai-forward's own HTTP/1.1 client (`http1.py`)
instead of aiohttp: the least a proxy on the gateway's client can do (a second yardstick).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import aiohttp
import uvicorn

from ai_forward.types import Receive, Scope, Send

SKIP = {b"host", b"content-length", b"connection", b"transfer-encoding"}


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def make_lean_app(upstream: str):  # type: ignore[no-untyped-def]
    from yarl import URL

    from ai_forward.http1_pool import Http1Pool

    state: dict[str, Http1Pool] = {}
    base = URL(upstream)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            state["pool"] = Http1Pool(limit=10000, pool_timeout=10, connect_timeout=10)
            await send({"type": "lifespan.startup.complete"})
            await receive()
            state["pool"].close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = await read_body(receive)
        headers = [(k, v) for k, v in scope["headers"] if k not in SKIP]
        url = base.with_path(scope["path"])
        answer = await state["pool"].request(scope["method"], url, headers, body)
        out = [
            (k.lower(), v)
            for k, v in answer.raw_headers
            if k.lower() not in (b"transfer-encoding", b"connection")
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": out})
        async for chunk in answer.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def make_app(upstream: str):  # type: ignore[no-untyped-def]
    state: dict[str, aiohttp.ClientSession] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            state["session"] = aiohttp.ClientSession(auto_decompress=False)
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await state["session"].close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = await read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k not in SKIP}
        url = upstream + scope["path"]
        async with state["session"].request(
            scope["method"], url, headers=headers, data=body
        ) as response:
            out = [
                (k.lower(), v)
                for k, v in response.raw_headers
                if k.lower() not in (b"transfer-encoding", b"connection")
            ]
            await send({"type": "http.response.start", "status": response.status, "headers": out})
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

    return app


def from_env():  # type: ignore[no-untyped-def]
    """The app for each worker process (uvicorn imports it by name when WORKERS > 1)."""
    lean = os.environ.get("PASSTHROUGH_CLIENT") == "builtin"
    return (make_lean_app if lean else make_app)(os.environ["PASSTHROUGH_UPSTREAM"])


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a not in ("--client", "builtin", "aiohttp")]
    if "--client" in sys.argv:
        os.environ["PASSTHROUGH_CLIENT"] = sys.argv[sys.argv.index("--client") + 1]
    workers = int(args[2]) if len(args) > 2 else 1
    os.environ["PASSTHROUGH_UPSTREAM"] = args[1]
    uvicorn.run(
        "passthrough:from_env" if workers > 1 else from_env(),
        factory=workers > 1,
        app_dir=str(Path(__file__).resolve().parent),
        workers=workers,
        host="127.0.0.1",
        port=int(args[0]),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        server_header=False,
        date_header=False,
    )
