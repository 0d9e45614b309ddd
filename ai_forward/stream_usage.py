"""Ask streamed chat/completions for their token usage, without the client seeing it.

OpenAI reports usage in a stream only when `stream_options.include_usage` is
true. Token limits and usage accounting need it, so `ask_for_usage` turns it on;
when the client had not asked, the extra usage-only chunk is removed from what
the client receives, so the stream it gets is the one it asked for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from .exchange import Exchange
from .sse import SSEDecoder

_USAGE_PATHS = ("/chat/completions", "/completions")
_ASKED = "stream_usage.asked"
_MAX_PENDING = 1024 * 1024


def ask_for_usage(ex: Exchange) -> None:
    """Make `ex.outcome.usage` available after a streamed completion; idempotent."""
    ex.observe_usage = True
    if ex.state.get(_ASKED) or not ex.upstream_path.endswith(_USAGE_PATHS):
        return
    ex.state[_ASKED] = True
    body = ex.json()
    if body is None or body.get("stream") is not True:
        return
    options: Any = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return
    if options is not None and not isinstance(options, dict):
        return  # malformed: let the upstream explain the problem to the client
    ex.replace_json({**body, "stream_options": {**(options or {}), "include_usage": True}})
    ex.body_filters.append(drop_usage_chunk)


async def drop_usage_chunk(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Pass SSE bytes through, minus events that carry only usage (no choices)."""
    decoder = SSEDecoder()
    pending = bytearray()
    async for chunk in chunks:
        # The common case: whole ordinary events, nothing buffered; pass them as they are.
        # An event cut across chunks is caught by the buffered path below.
        if b'"usage"' not in chunk and not pending and chunk.endswith(b"\n\n"):
            yield chunk
            continue
        pending += chunk
        out = bytearray()
        while True:
            end = pending.find(b"\n\n")
            if end < 0:
                break
            event = bytes(pending[: end + 2])
            del pending[: end + 2]
            if not is_usage_only(decoder, event):
                out += event
        if len(pending) > _MAX_PENDING:  # not SSE as we know it: stop looking, pass it on
            out += pending
            pending.clear()
        if out:
            yield bytes(out)
    if pending:
        yield bytes(pending)


def is_usage_only(decoder: SSEDecoder, event: bytes) -> bool:
    if b'"usage"' not in event:
        return False
    for _, data in decoder.feed(event):
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        return (
            isinstance(payload, dict)
            and not payload.get("choices")
            and isinstance(payload.get("usage"), dict)
        )
    return False
