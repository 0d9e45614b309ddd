"""TOKEN_RATE_LIMIT: relay a streamed reply no faster than N tokens a second.

Each SSE event is held until the tokens sent before it have had their time, with
`asyncio.sleep`, so a paced stream never holds up any other request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson

from ..exchange import BodyFilter
from ..observe.tokens import delta_chars, text_tokens

_MAX_PENDING = 1024 * 1024


def paced(tokens_per_second: float) -> BodyFilter:
    """A body filter that spaces SSE events by the tokens they carry."""

    async def pace(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        pending = bytearray()
        started: float | None = None
        sent = 0
        async for chunk in chunks:
            pending += chunk
            out = bytearray()
            while True:
                end = _event_end(pending)
                if end < 0:
                    break
                event = bytes(pending[:end])
                del pending[:end]
                tokens = event_tokens(event)
                if tokens:
                    now = time.monotonic()
                    if started is None:
                        started = now
                    delay = started + sent / tokens_per_second - now
                    if delay > 0:
                        if out:
                            yield bytes(out)
                            out.clear()
                        await asyncio.sleep(delay)
                    sent += tokens
                out += event
            if len(pending) > _MAX_PENDING:  # not SSE as we know it: pass it on unpaced
                out += pending
                pending.clear()
            if out:
                yield bytes(out)
        if pending:
            yield bytes(pending)

    return pace


def _event_end(buffer: bytearray) -> int:
    """Index just past the first complete event in `buffer`, or -1."""
    ends = [i + len(sep) for sep in (b"\n\n", b"\r\n\r\n") if (i := buffer.find(sep)) >= 0]
    return min(ends) if ends else -1


def event_tokens(event: bytes) -> int:
    if b'"choices"' not in event:
        return 0
    chars = 0
    for line in event.splitlines():
        if not line.startswith(b"data:"):
            continue
        try:
            chunk = orjson.loads(line[5:])
        except orjson.JSONDecodeError:
            continue
        if isinstance(chunk, dict):
            chars += delta_chars(chunk)
    return text_tokens(chars)
