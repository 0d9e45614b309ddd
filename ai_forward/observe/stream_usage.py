"""Ask streamed chat/completions for their token usage, without the client seeing it.

OpenAI reports usage in a stream only when `stream_options.include_usage` is
true. Token limits and usage accounting need it, so `ask_for_usage` turns it on;
when the client had not asked, the extra usage-only chunk is removed from what
the client receives, so the stream it gets is the one it asked for.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..exchange import Exchange, StateKey

_USAGE_PATHS = ("/chat/completions", "/completions")
_ASKED = StateKey[bool]("usage asked for")
_MAX_PENDING = 1024 * 1024
_USAGE_OBJECT = re.compile(rb'"usage":\s*\{').search


def ask_for_usage(ex: Exchange) -> None:
    """Make `ex.outcome.usage` available after a streamed completion; idempotent."""
    ex.observe_usage = True
    if ex.get(_ASKED) or not ex.upstream_path.endswith(_USAGE_PATHS):
        return
    ex.set(_ASKED, True)
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
    carry = b""
    async for chunk in chunks:
        # The common case: whole events, none usage-only; they pass as they are. (OpenAI
        # sends `"usage":null` in every chunk once asked; the usage-only chunk, last, has
        # no choices: plain substring tests find it faster than any parsing.)
        if not carry and chunk.endswith(b"\n\n") and not may_be_usage_only(chunk):
            yield chunk
            continue
        data = carry + chunk
        end = data.rfind(b"\n\n")
        if end < 0:
            carry = b"" if len(data) > _MAX_PENDING else data  # not SSE as we know it
            if not carry:
                yield data
            continue
        whole, carry = data[: end + 2], data[end + 2 :]
        if has_usage(whole):
            events = whole[:-2].split(b"\n\n")
            whole = b"".join(event + b"\n\n" for event in events if not is_usage_only(event))
        if whole:
            yield whole
    if carry:
        yield carry


def may_be_usage_only(data: bytes) -> bool:
    return (b'"choices":[]' in data or b'"choices": []' in data or b'"choices"' not in data) and (
        has_usage(data)
    )


def has_usage(data: bytes) -> bool:
    """Whether `data` may hold a usage object (not `"usage":null`)."""
    return _USAGE_OBJECT(data) is not None


def is_usage_only(event: bytes) -> bool:
    """Whether one SSE event (without its blank line) is a usage-only chunk."""
    if not has_usage(event):
        return False
    lines = [line[5:].strip() for line in event.splitlines() if line.startswith(b"data:")]
    try:
        payload = orjson.loads(b"\n".join(lines))
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(payload, dict)
        and not payload.get("choices")
        and isinstance(payload.get("usage"), dict)
    )
