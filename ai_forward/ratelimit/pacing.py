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
from ..sse import SSESplitter, event_data, split_events


def paced(tokens_per_second: float) -> BodyFilter:
    """A body filter that spaces SSE events by the tokens they carry."""

    async def pace(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        splitter = SSESplitter()
        started: float | None = None
        sent = 0
        async for chunk in chunks:
            out = bytearray()
            for event in split_events(splitter.feed(chunk)):
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
            if out:
                yield bytes(out)
        rest = splitter.flush()
        if rest:
            yield rest

    return pace


def event_tokens(event: bytes) -> int:
    if b'"choices"' not in event:
        return 0
    try:
        chunk = orjson.loads(event_data(event))
    except orjson.JSONDecodeError:
        return 0
    return text_tokens(delta_chars(chunk)) if isinstance(chunk, dict) else 0
