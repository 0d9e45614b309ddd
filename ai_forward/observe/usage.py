"""The token usage of a reply, read as it passes at near-zero cost.

Token limits and usage accounting need only the `usage` object, which OpenAI-format
streams carry in their last event. Rather than decode every event (what the chat
log's full reassembly does), this keeps the stream's complete events as they pass
(a list append per chunk) and reads them once, when the stream ends: one scan for a
usage object in C, and a decode of only the events from there on. For upstreams that
report no usage, the generated text is then measured by one regular expression over
the bytes (no JSON decoding). A stream past HOLD_BYTES is read in blocks of that size
instead, so that the memory it holds stays bounded.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from ..sse import SSESplitter, event_data, event_start, split_events
from .fields import GENERATED_TEXT, usage_of
from .reply import MAX_BUFFERED_JSON, ResponseObserver, parse_reply
from .stream_usage import find_usage, has_usage

if TYPE_CHECKING:
    from ..exchange import Exchange, Outcome

# A usage object with at most one level of nested objects (`prompt_tokens_details`).
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*(\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\})')
# Generated text in OpenAI chunks. (One regex for this and the usage test together is four
# times slower: measured.)
_GENERATED = GENERATED_TEXT
HOLD_BYTES = 1024 * 1024
TAIL = 8  # chunks kept to find the usage in, for the token counts alone
_USAGE_TRIES = 4  # `"usage"` keys looked at from the end (streams may say `"usage":null`)


class UsageObserver:
    """Feed it SSE chunks; `result()` is `{"usage": ...}`, or None when the stream reported
    no usage; then `chars` is the length of the generated text (else it may be partial:
    nobody needs it)."""

    hold = HOLD_BYTES

    def __init__(self) -> None:
        self.usage: dict[str, Any] | None = None
        self.chars = 0
        self._splitter = SSESplitter()  # bounds an event that never ends, as every reader
        self._held: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        whole = self._splitter.feed(chunk)
        if whole:
            self._held.append(whole)
            self._size += len(whole)
            if self._size > self.hold:
                self._release()

    def _release(self) -> None:
        """Read the events held so far (usage and text), and let them go."""
        whole = b"".join(self._held)
        self._held.clear()
        self._size = 0
        self.chars += sum(map(len, _GENERATED.findall(whole)))
        self._read_usage(whole)

    def _read_usage(self, whole: bytes) -> None:
        found = find_usage(whole)
        if found is None:
            return
        for data in map(event_data, split_events(whole[event_start(whole, found.start()) :])):
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
        stream = b"".join(self._held) + rest
        self._held.clear()
        self._ended(stream)
        whole = stream + b"\n\n" if rest else stream
        self._read_usage(whole)
        if self.usage is None:
            self.chars += sum(map(len, _GENERATED.findall(whole)))
        return {"usage": self.usage} if self.usage is not None else None

    def _ended(self, stream: bytes) -> None:
        """What the stream held unread when it ended (all of it, if it never overflowed)."""


class RawStreamObserver(UsageObserver):
    """A UsageObserver that also keeps the stream's bytes (up to MAX_BUFFERED_JSON), for the
    chat log to reassemble off the event loop: no event is decoded on the request path."""

    hold = MAX_BUFFERED_JSON

    def __init__(self) -> None:
        super().__init__()
        self.raw: bytes | None = None
        self._whole = True

    def _release(self) -> None:
        self._whole = False  # too large to log whole: the record keeps only the usage
        super()._release()

    def _ended(self, stream: bytes) -> None:
        if self._whole:
            self.raw = stream


class TailUsageObserver(deque[bytes]):
    """Feed it a JSON reply or a stream; `result()` is `{"usage": ...}`, the last usage
    object the reply carries, read from its last chunks only.

    For the token counts alone, decoding a reply (or every event of a stream) costs more
    than the rest of the metrics together. OpenAI-format replies end with their usage (a
    stream: in its last events), so only the last TAIL chunks are kept and only the usage
    object found there is decoded. A deque bounded to TAIL, made (`tail_observer()`) and
    fed in C, with no Python frame per reply or per chunk. Empty, it is falsy: test it
    against None.
    """

    __slots__ = ()
    feed = deque.append

    def result(self) -> dict[str, Any] | None:
        """A reply holding only its usage (None when none was found at its end)."""
        if not self:
            return None
        # The last chunk alone usually holds it; else the tail, joined.
        usage = last_usage(self[-1])
        if usage is None and len(self) > 1:
            usage = last_usage(b"".join(self))
        return None if usage is None else {"usage": usage}


tail_observer: Callable[[], TailUsageObserver] = partial(TailUsageObserver, (), TAIL)


class JSONUsageReader:
    """Feed it a JSON reply; `result()` is `{"usage": ...}` read from the reply's end when it
    reports usage (the usual case: nothing else is decoded), else the whole reply parsed,
    so that its text can be counted instead (token limits, usage accounting)."""

    __slots__ = ("_kept", "feed")

    def __init__(self) -> None:
        self._kept = ResponseObserver("application/json")  # keeps the bytes, bounded
        self.feed = self._kept.feed

    def result(self) -> dict[str, Any] | None:
        body = self._kept.body()
        if not body:
            return None
        usage = last_usage(body)
        return {"usage": usage} if usage is not None else parse_reply(body)


def last_usage(body: bytes) -> dict[str, Any] | None:
    """The last `"usage": {...}` object of a JSON text or of SSE events, if there is a
    readable one (a later `"usage": null` is passed over).

    Within a JSON string a quote is escaped, so `"usage"` followed by a colon is a key.
    """
    end = len(body)
    for _ in range(_USAGE_TRIES):
        at = body.rfind(b'"usage"', 0, end)
        if at < 0:
            return None
        found = _USAGE_OBJECT.match(body, at)
        if found is not None:
            try:
                usage = orjson.loads(found.group(1))
            except orjson.JSONDecodeError:
                return None
            return usage if isinstance(usage, dict) else None
        end = at
    return None


Observer = ResponseObserver | UsageObserver | TailUsageObserver | JSONUsageReader


def observer_for(
    content_type: str, full: bool, usage: bool, tokens: bool = False
) -> Observer | None:
    """What reads the reply: the whole of it (chat log), usage only (limits), the reported
    token counts only (metrics: a stream or a JSON reply), or nothing.

    Usage only, a non-streamed body is kept, and only its usage object decoded, unless it
    reports none (limits then count its text); a stream read whole is kept as it came, to
    be reassembled by whoever needs it.
    """
    streamed = content_type.startswith("text/event-stream")
    if full:
        return RawStreamObserver() if streamed else ResponseObserver(content_type)
    if streamed:
        if usage:
            return UsageObserver()
        return tail_observer() if tokens else None
    if usage:
        return JSONUsageReader()
    if tokens and "json" in content_type:
        return tail_observer()
    return None


def observer_of(ex: Exchange, content_type: str) -> Observer | None:
    """What reads this exchange's reply, as its features asked (None: nobody asked)."""
    if ex.observe or ex.observe_usage:
        return observer_for(content_type, ex.observe, ex.observe_usage, ex.observe_tokens)
    if ex.observe_tokens and (
        content_type.startswith("text/event-stream") or "json" in content_type
    ):
        return tail_observer()  # the metrics' reader, on every request: no Python frame
    return None


def record(outcome: Outcome, observer: Observer) -> None:
    """What `observer` read of the reply, into the outcome the after-hooks read."""
    outcome.reply = observer.result()
    if isinstance(observer, UsageObserver):
        outcome.streamed_chars = observer.chars
    if isinstance(observer, RawStreamObserver) and observer.raw is not None:
        outcome.stream = bytes(observer.raw)
