"""Upstream handlers and log readers for the chat-log tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from tests.fakes import Recorded, chunk, json_response, sse, stream_response

USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}


def usage_chunk() -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": USAGE,
    }


def streamed(request: web.Request, rec: Recorded, *chunks: dict[str, Any], delay: float = 0.0):  # type: ignore[no-untyped-def]
    """The chunks as SSE, plus a usage chunk when the request asked for one."""
    payloads = list(chunks)
    if (rec.json().get("stream_options") or {}).get("include_usage"):
        payloads.append(usage_chunk())
    return stream_response(request, sse(*payloads), delay=delay)


def tool_call(
    index: int, *, id: str | None = None, name: str = "", args: str = ""
) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {}}
    if id:
        call.update(id=id, type="function")
    if name:
        call["function"]["name"] = name
    if args:
        call["function"]["arguments"] = args
    return call


def tool_call_chunks() -> list[dict[str, Any]]:
    """Two tool calls whose arguments arrive a few characters at a time, interleaved."""
    first = '{"city": "Paris", "unit": "celsius"}'
    second = '{"city": "Tokyo"}'
    chunks = [
        chunk(
            role="assistant", content=None, tool_calls=[tool_call(0, id="call_a", name="weather")]
        ),
        chunk(tool_calls=[tool_call(1, id="call_b", name="weather")]),
    ]
    for i in range(0, max(len(first), len(second)), 3):
        calls = [tool_call(n, args=text[i : i + 3]) for n, text in enumerate((first, second))]
        chunks.append(chunk(tool_calls=[c for c in calls if c["function"]]))
    chunks.append(chunk(finish="tool_calls"))
    return chunks


async def embeddings(request: web.Request, rec: Recorded) -> web.StreamResponse:
    inputs = rec.json()["input"]
    count = len(inputs) if isinstance(inputs, list) else 1
    return await json_response(
        {
            "object": "list",
            "model": "text-embedding-3-small",
            "data": [
                {"object": "embedding", "index": i, "embedding": [0.25] * 64} for i in range(count)
            ],
            "usage": {"prompt_tokens": 3, "total_tokens": 3},
        }
    )


def log_files(log_dir: Path) -> list[Path]:
    return sorted((log_dir / "chat").rglob("*.jsonl")) if (log_dir / "chat").is_dir() else []


def read_records(log_dir: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in log_files(log_dir):
        records += [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
    return sorted(records, key=lambda r: r["time"])


def wait_records(log_dir: Path, count: int, seconds: float = 5.0) -> list[dict[str, Any]]:
    """The records once at least `count` are on disk (the writer is asynchronous)."""
    deadline = time.monotonic() + seconds
    while True:
        records = read_records(log_dir)
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.02)


def all_log_bytes(log_dir: Path) -> bytes:
    return b"".join(path.read_bytes() for path in log_files(log_dir))
