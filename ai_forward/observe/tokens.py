"""Token estimates for limits: before a request (to reserve) and after (when no usage came).

About four characters make a token in English text; images and other non-text parts
count as a fixed number of tokens. Estimates only need to be the right size: the
real usage settles the count when the upstream reports it.
"""

from __future__ import annotations

import math
from typing import Any

from ..exchange import Exchange
from .fields import TEXT_FIELDS

CHARS_PER_TOKEN = 4
NON_TEXT_PART_TOKENS = 800
DEFAULT_COMPLETION_RESERVE = 1024
_MAX_DEPTH = 12
_GENERATING = ("/completions", "/responses", "/messages")
_LIMIT_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
_NON_TEXT_TYPES = frozenset({"image_url", "input_image", "image", "input_audio", "file", "audio"})
_SKIPPED_KEYS = frozenset({"model", "role", "type", "id", "tool_call_id", "stream_options"})


def text_tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def estimate_request(body: dict[str, Any] | None, path: str, body_size: int) -> int:
    """Tokens a request may use: its prompt plus the most it asks to generate."""
    if body is None:
        return text_tokens(body_size) if body_size else 0
    prompt = prompt_tokens(body)
    limit = None
    for name in _LIMIT_FIELDS:
        value = body.get(name)
        if isinstance(value, int) and value > 0:
            limit = value
            break
    if limit is None:
        limit = DEFAULT_COMPLETION_RESERVE if path.rstrip("/").endswith(_GENERATING) else 0
    choices = body.get("n")
    return prompt + limit * (choices if isinstance(choices, int) and 1 < choices <= 128 else 1)


def prompt_tokens(body: dict[str, Any]) -> int:
    """Tokens of the text (and non-text parts) a request sends."""
    chars = 0
    parts = 0
    # Strings are counted where they are met; only containers go on the stack.
    stack: list[tuple[Any, int]] = []
    for key, value in body.items():
        if key in _SKIPPED_KEYS:
            continue
        if isinstance(value, str):
            if not value.startswith("data:"):
                chars += len(value)
        else:
            stack.append((value, 0))
    while stack:
        value, depth = stack.pop()
        if depth >= _MAX_DEPTH:
            continue
        if isinstance(value, dict):
            kind = value.get("type")
            if isinstance(kind, str) and kind in _NON_TEXT_TYPES:
                parts += 1
                continue
            items: Any = (v for k, v in value.items() if k not in _SKIPPED_KEYS)
        elif isinstance(value, list):
            items = value
        else:
            continue
        depth += 1
        for item in items:
            if isinstance(item, str):
                if not item.startswith("data:") and depth <= _MAX_DEPTH:
                    chars += len(item)
            elif isinstance(item, (dict, list)):
                stack.append((item, depth))
    return text_tokens(chars) + parts * NON_TEXT_PART_TOKENS


def usage_tokens(usage: dict[str, Any] | None) -> int | None:
    """Total tokens in an OpenAI-style usage object, or None if it has none."""
    if not usage:
        return None
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    counted = [
        usage[k]
        for k in ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens")
        if isinstance(usage.get(k), int)
    ]
    return sum(counted) if counted else None


def reply_tokens(reply: dict[str, Any] | None) -> int:
    """Tokens in the text of a (reassembled) reply, for when the upstream gave no usage."""
    if not reply:
        return 0
    chars = 0
    for choice in reply.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        chars += len(choice.get("text") or "")
        message = choice.get("message") or {}
        for field in TEXT_FIELDS:
            piece = message.get(field)
            chars += len(piece) if isinstance(piece, str) else 0
        for call in message.get("tool_calls") or ():
            function = (call.get("function") or {}) if isinstance(call, dict) else {}
            chars += len(function.get("name") or "") + len(function.get("arguments") or "")
    return text_tokens(chars)


def delta_chars(chunk: dict[str, Any]) -> int:
    """Characters of generated text in one streamed chunk."""
    chars = 0
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        text = choice.get("text")
        chars += len(text) if isinstance(text, str) else 0
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            continue
        for field in TEXT_FIELDS:
            piece = delta.get(field)
            chars += len(piece) if isinstance(piece, str) else 0
        for call in delta.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                chars += len(function.get("arguments") or "") + len(function.get("name") or "")
    return chars


def generated_tokens(reply: dict[str, Any] | None, streamed_chars: int) -> int:
    """Tokens generated, counted locally: from the reassembled reply, else the streamed text."""
    return reply_tokens(reply) or text_tokens(streamed_chars)


def usage_or_count(ex: Exchange) -> dict[str, Any] | None:
    """What the exchange used: the usage the upstream reported, else a local count of the
    prompt and of the text that came back; None when the upstream refused or never
    answered (it charges nothing then)."""
    outcome = ex.outcome
    usage = outcome.usage
    if usage_tokens(usage) is not None:
        return usage
    if outcome.status >= 400 or outcome.status == 0:
        return None
    body = ex.json()
    return {
        "prompt_tokens": prompt_tokens(body) if body else 0,
        # When only usage was observed, the relay measured the streamed text instead.
        "completion_tokens": generated_tokens(outcome.reply, outcome.streamed_chars),
    }
