"""The token usage of a reply, read as it passes at near-zero cost.

Token limits and usage accounting need only the `usage` object, which OpenAI-format
streams carry in their last event. Rather than decode every event (what the chat
log's full reassembly does), this scans each chunk for a usage object in C and decodes
only the events that hold it. For upstreams that report no usage, the generated
text is measured too, by one regular expression over the bytes (no JSON decoding).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..sse import SSESplitter, event_data, split_events
from .fields import GENERATED_TEXT, usage_of
from .reply import ResponseObserver
from .stream_usage import has_usage

# Generated text in OpenAI chunks. (One regex for this and the usage test together is four
# times slower: measured.)
_GENERATED = GENERATED_TEXT


class UsageObserver:
    """Feed it SSE chunks; `result()` is `{"usage": ...}`, `chars` the generated text's length."""

    def __init__(self) -> None:
        self.usage: dict[str, Any] | None = None
        self.chars = 0
        self._splitter = SSESplitter()

    def feed(self, chunk: bytes) -> None:
        whole = self._splitter.feed(chunk)
        if whole:
            self._read(whole)

    def _read(self, whole: bytes) -> None:
        self.chars += sum(map(len, _GENERATED.findall(whole)))
        if has_usage(whole):
            self._read_usage(whole)

    def _read_usage(self, events: bytes) -> None:
        for data in map(event_data, split_events(events)):
            if not has_usage(data):
                continue
            try:
                payload = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            usage = usage_of(payload) if isinstance(payload, dict) else None
            if usage is not None:
                self.usage = usage

    def result(self) -> dict[str, Any] | None:
        """A reply holding only its usage (None when none could be read)."""
        rest = self._splitter.flush()
        if rest:
            self._read(rest + b"\n\n")
        return {"usage": self.usage} if self.usage is not None else None


def observer_for(
    content_type: str, full: bool, usage: bool
) -> ResponseObserver | UsageObserver | None:
    """What reads the reply: full reassembly (chat log), usage only (limits), or nothing.

    A non-streamed body is parsed once at the end either way, so it gets the full reader.
    """
    if full or (usage and not content_type.startswith("text/event-stream")):
        return ResponseObserver(content_type)
    return UsageObserver() if usage else None
