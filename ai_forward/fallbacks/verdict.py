"""Whether an upstream's error answer is worth asking another model (no I/O)."""

from __future__ import annotations

# Answers after which the next model is asked (a 400 only when it says the input is too long).
FALLBACK_STATUSES = frozenset({404, 413, 429})
# How a 400 says "the input does not fit this model", across OpenAI, Anthropic and Gemini.
TOO_LONG = (
    b"context_length_exceeded",
    b"context length",
    b"maximum context",
    b"prompt is too long",
    b"input is too long",
    b"too many tokens",
    b"exceeds the maximum number of tokens",
)


def worth_reading(status: int) -> bool:
    """Whether the answer may send the exchange to the next model (its body tells a 400)."""
    return status >= 500 or status in FALLBACK_STATUSES or status == 400


def fallback_reason(status: int, body: bytes) -> str:
    """Why another model may do better than this answer ("" when it would not)."""
    if status >= 500 or status in FALLBACK_STATUSES:
        return str(status)
    if status == 400:
        lowered = body.lower()
        if any(phrase in lowered for phrase in TOO_LONG):
            return "context length"
    return ""
