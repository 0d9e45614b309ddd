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
from ..sse import SSESplitter, event_data, event_start, split_events

_USAGE_PATHS = ("/chat/completions", "/completions")
_ASKED = StateKey[bool]("usage asked for")
find_usage = re.compile(rb'"usage":\s*\{').search


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
    splitter = SSESplitter()
    async for chunk in chunks:
        whole = splitter.feed(chunk)
        # OpenAI sends `"usage":null` in every chunk once asked; the usage-only chunk, last,
        # holds a usage object: a plain substring test finds it faster than any parsing.
        found = find_usage(whole)
        if found is not None:
            # Only the events from the first usage object on need a look.
            start = event_start(whole, found.start())
            kept = [e for e in split_events(whole[start:]) if not is_usage_only(e)]
            whole = whole[:start] + b"".join(kept)
        if whole:
            yield whole
    rest = splitter.flush()
    if rest and not is_usage_only(rest):
        yield rest


def may_be_usage_only(data: bytes) -> bool:
    return (b'"choices":[]' in data or b'"choices": []' in data or b'"choices"' not in data) and (
        has_usage(data)
    )


def has_usage(data: bytes) -> bool:
    """Whether `data` may hold a usage object (not `"usage":null`)."""
    return find_usage(data) is not None


def is_usage_only(event: bytes) -> bool:
    """Whether one SSE event (without its blank line) is a usage-only chunk."""
    if not has_usage(event):
        return False
    try:
        payload = orjson.loads(event_data(event))
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(payload, dict)
        and not payload.get("choices")
        and isinstance(payload.get("usage"), dict)
    )
