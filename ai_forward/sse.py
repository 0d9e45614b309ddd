"""Server-sent events: the one bounded splitter every stream reader uses, and the encoder.

Every reader of a stream (provider translations, usage and reply observers, the usage
chunk filter, pacing, fan-out) holds at most one incomplete event, and no event may
grow past MAX_EVENT_SIZE: an upstream that never ends its events (`data:` lines with
no blank line between them) raises EventTooLarge, and the relay ends the stream with
its error event, instead of growing the process without bound.
"""

from __future__ import annotations

import re

import orjson

DONE = b"data: [DONE]\n\n"
# The largest event any reader buffers; a streamed image or a Responses API
# `response.completed` event is well below it.
MAX_EVENT_SIZE = 8 * 1024 * 1024
_EVENT_END = re.compile(rb"\r?\n\r?\n")


class EventTooLarge(Exception):
    """An SSE event grew past MAX_EVENT_SIZE without ending."""

    def __init__(self, limit: int) -> None:
        size = f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"
        super().__init__(
            f"the upstream sent a stream event larger than {size} (or never ended one); "
            "the reply was cut there"
        )


class SSESplitter:
    """Cuts a byte stream at event ends (a blank line).

    `feed` returns the complete events received so far, as one run of bytes exactly as
    they came; the incomplete rest is kept for the next chunk and never exceeds
    `max_event_size`.
    """

    __slots__ = ("_max", "_rest")

    def __init__(self, max_event_size: int = MAX_EVENT_SIZE) -> None:
        self._rest = b""
        self._max = max_event_size

    def feed(self, chunk: bytes) -> bytes:
        if not self._rest and chunk.endswith(b"\n\n"):
            return chunk  # whole events, the usual case: no copy
        region = self._rest + chunk
        lf, crlf = region.rfind(b"\n\n"), region.rfind(b"\n\r\n")
        end = max(lf + 2 if lf >= 0 else 0, crlf + 3 if crlf >= 0 else 0)
        whole, self._rest = region[:end], region[end:]
        if len(self._rest) > self._max:
            self._rest = b""
            raise EventTooLarge(self._max)
        return whole

    def flush(self) -> bytes:
        """What is left at the end of the stream: an event without its blank line."""
        rest, self._rest = self._rest, b""
        return rest


def split_events(whole: bytes) -> list[bytes]:
    """The events of a run of complete events, each with its blank line."""
    events: list[bytes] = []
    start = 0
    for found in _EVENT_END.finditer(whole):
        events.append(whole[start : found.end()])
        start = found.end()
    if start < len(whole):
        events.append(whole[start:])
    return events


def event_start(whole: bytes, at: int) -> int:
    """Where, in a run of complete events, an event boundary lies at or before `at`: the
    events before it need not be split to reach the one holding `at`."""
    lf, crlf = whole.rfind(b"\n\n", 0, at), whole.rfind(b"\n\r\n", 0, at)
    return max(lf + 2 if lf >= 0 else 0, crlf + 3 if crlf >= 0 else 0)


def event_data(event: bytes) -> bytes:
    """The data of one event: its `data:` lines, joined by newlines (SSE's rule)."""
    lines = [line[5:] for line in event.splitlines() if line.startswith(b"data:")]
    return b"\n".join(line[1:] if line[:1] == b" " else line for line in lines)


class SSEDecoder:
    """Feeds raw bytes in, yields the `data` payload of each complete event.

    Handles events split across chunks, CRLF line endings and multi-line data.
    The buffer holds at most one incomplete event, of at most `max_event_size` bytes:
    past that, `feed` raises EventTooLarge.
    """

    def __init__(self, max_event_size: int = MAX_EVENT_SIZE) -> None:
        self._buffer = bytearray()
        self._data: list[bytes] = []
        self._size = 0  # bytes of the current event's data so far
        self._event: bytes | None = None
        self._max = max_event_size

    def feed(self, chunk: bytes) -> list[tuple[bytes | None, bytes]]:
        """Complete events in `chunk` as (event name or None, data)."""
        self._buffer += chunk
        events: list[tuple[bytes | None, bytes]] = []
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) + self._size > self._max:
                    self._reset()
                    raise EventTooLarge(self._max)
                break
            line = bytes(self._buffer[:newline]).rstrip(b"\r")
            del self._buffer[: newline + 1]
            if not line:
                if self._data:
                    events.append((self._event, b"\n".join(self._data)))
                self._data = []
                self._size = 0
                self._event = None
            elif line.startswith(b"data:"):
                data = line[5:].lstrip(b" ") if line[5:6] == b" " else line[5:]
                self._size += len(data) + 1
                if self._size > self._max:
                    self._reset()
                    raise EventTooLarge(self._max)
                self._data.append(data)
            elif line.startswith(b"event:"):
                self._event = line[6:].strip()
        return events

    def _reset(self) -> None:
        self._buffer.clear()
        self._data = []
        self._size = 0

    def flush(self) -> list[tuple[bytes | None, bytes]]:
        """Whatever complete-but-unterminated event remains at end of stream."""
        if not (self._buffer or self._data):
            return []
        try:
            return self.feed(b"\n\n")
        except EventTooLarge:
            return []


def encode_event(payload: object, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(payload) + b"\n\n"
