"""The yardstick: a bare reverse proxy (raw ASGI + one aiohttp session), no features at all.

python benchmarks/passthrough.py PORT UPSTREAM_URL [WORKERS]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import aiohttp
import uvicorn

from ai_forward.types import Receive, Scope, Send

SKIP = {b"host", b"content-length", b"connection", b"transfer-encoding"}


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
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
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
    return make_app(os.environ["PASSTHROUGH_UPSTREAM"])


if __name__ == "__main__":
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    os.environ["PASSTHROUGH_UPSTREAM"] = sys.argv[2]
    uvicorn.run(
        "passthrough:from_env" if workers > 1 else make_app(sys.argv[2]),
        factory=workers > 1,
        app_dir=str(Path(__file__).resolve().parent),
        workers=workers,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        server_header=False,
        date_header=False,
    )
