"""Where an OpenAI-format reply carries generated text and usage, for every reader of replies."""

from __future__ import annotations

import re
from typing import Any

# Fields of a message (or of a streamed delta) that hold generated text.
TEXT_FIELDS = ("content", "reasoning_content", "reasoning", "refusal")
# The same in raw chunk bytes, plus a completion choice's `text` and a tool call's `arguments`.
GENERATED_TEXT = re.compile(
    rb'"(?:'
    + b"|".join(name.encode() for name in (*TEXT_FIELDS, "text", "arguments"))
    + rb')":\s*"((?:[^"\\]|\\.)*)"'
)


def usage_of(event: dict[str, Any]) -> dict[str, Any] | None:
    """The usage object of a reply or of one streamed event (Responses API events carry it
    in their `response`), or None."""
    usage = event.get("usage")
    if not isinstance(usage, dict):
        response = event.get("response")
        usage = response.get("usage") if isinstance(response, dict) else None
    return usage if isinstance(usage, dict) else None


def usage_counts(usage: dict[str, Any] | None) -> tuple[int | None, int | None]:
    """(tokens in, tokens out) of a usage object, in either API's names; None where absent."""
    if not usage:
        return None, None
    tokens_in = usage.get("prompt_tokens", usage.get("input_tokens"))
    tokens_out = usage.get("completion_tokens", usage.get("output_tokens"))
    return (
        tokens_in if isinstance(tokens_in, int) else None,
        tokens_out if isinstance(tokens_out, int) else None,
    )
