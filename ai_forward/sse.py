"""Server-sent events: incremental parsing and emitting."""

from __future__ import annotations

import orjson

DONE = b"data: [DONE]\n\n"


class SSEDecoder:
    """Feeds raw bytes in, yields the `data` payload of each complete event.

    Handles events split across chunks, CRLF line endings and multi-line data.
    The buffer holds at most one incomplete event.
    """

    def __init__(self, max_event_size: int = 16 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        self._data: list[bytes] = []
        self._event: bytes | None = None
        self._max = max_event_size

    def feed(self, chunk: bytes) -> list[tuple[bytes | None, bytes]]:
        """Complete events in `chunk` as (event name or None, data)."""
        self._buffer += chunk
        events: list[tuple[bytes | None, bytes]] = []
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) > self._max:
                    self._buffer.clear()
                break
            line = bytes(self._buffer[:newline]).rstrip(b"\r")
            del self._buffer[: newline + 1]
            if not line:
                if self._data:
                    events.append((self._event, b"\n".join(self._data)))
                self._data = []
                self._event = None
            elif line.startswith(b"data:"):
                self._data.append(line[5:].lstrip(b" ") if line[5:6] == b" " else line[5:])
            elif line.startswith(b"event:"):
                self._event = line[6:].strip()
        return events

    def flush(self) -> list[tuple[bytes | None, bytes]]:
        """Whatever complete-but-unterminated event remains at end of stream."""
        events = self.feed(b"\n\n") if self._buffer or self._data else []
        return events


def encode_event(payload: object, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(payload) + b"\n\n"
