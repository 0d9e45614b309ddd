"""The yardstick: a bare reverse proxy (raw ASGI + one aiohttp session), no features at all.

python benchmarks/passthrough.py PORT UPSTREAM_URL
"""

from __future__ import annotations

import sys

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


if __name__ == "__main__":
    uvicorn.run(
        make_app(sys.argv[2]),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        server_header=False,
        date_header=False,
    )
