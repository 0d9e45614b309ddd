"""A slow fake upstream for the streams benchmark: every chat completion is a stream of
EVENTS events, one every INTERVAL seconds, each stamped with the time it was sent.

python benchmarks/slow_upstream.py PORT [EVENTS] [INTERVAL]
"""

from __future__ import annotations

import asyncio
import sys
import time

import orjson
import uvicorn

from ai_forward.types import Receive, Scope, Send

HEADERS = [(b"content-type", b"text/event-stream")]


def event(sent: float, i: int) -> bytes:
    payload = {
        "sent": sent,
        "id": "chatcmpl-slow",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def make_app(events: int, interval: float):  # type: ignore[no-untyped-def]
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        if scope["method"] != "POST":  # a health probe
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        for i in range(events):
            await send(
                {"type": "http.response.body", "body": event(time.time(), i), "more_body": True}
            )
            await asyncio.sleep(interval)
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


if __name__ == "__main__":
    uvicorn.run(
        make_app(
            int(sys.argv[2]) if len(sys.argv) > 2 else 60,
            float(sys.argv[3]) if len(sys.argv) > 3 else 1.0,
        ),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        backlog=16384,
        timeout_keep_alive=120,
    )
