"""A record's reply: as read on the request path, or reassembled from the raw stream in
the writer thread, so that the event loop decodes no streamed event for the chat log."""

from __future__ import annotations

from typing import Any

import orjson

from ..observe.reply import ReplyAssembler
from ..sse import SSEDecoder

DISCONNECTED = "client disconnected"
_DONE_END = b"data: [DONE]\n\n"


def add_reply(record: dict[str, Any], reply: dict[str, Any] | None) -> dict[str, Any]:
    """`record` with its reply, and its usage and completeness as the reply tells them."""
    record["reply"] = reply
    usage = reply.get("usage") if reply else None
    if record.get("usage") is None and isinstance(usage, dict):
        record["usage"] = usage  # what the request path read wins (a cache hit costs none)
    if not record["complete"] and record["error"] == DISCONNECTED and reply_finished(reply):
        # SDKs close the connection as soon as they read `[DONE]`: nothing was lost.
        record["complete"], record["error"] = True, None
    return record


def reassemble(stream: bytes) -> dict[str, Any] | None:
    """A raw SSE reply joined into OpenAI's non-streamed shape."""
    assembler = ReplyAssembler()
    chunks = plain_chunks(stream)
    if chunks is None:
        assembler.add_events(stream_data(stream))
    else:
        assembler.done = stream.endswith(_DONE_END)
        for chunk in chunks:
            if isinstance(chunk, dict):
                assembler.add_chunk(chunk)
    return assembler.result()


def plain_chunks(stream: bytes) -> list[Any] | None:
    """The events of the usual stream decoded in one call, without cutting it into events
    in Python: every event one `data: {json}` line (then `data: [DONE]`). None for any
    other stream, which `stream_data` cuts up event by event."""
    if not stream.startswith(b"data: ") or not stream.endswith(b"\n\n") or b"\r" in stream:
        return None
    body = stream[6:-2]
    if body.endswith(b"\n\ndata: [DONE]"):
        body = body[: -len(b"\n\ndata: [DONE]")]
    # A newline anywhere but between events (a multi-line event, a comment, an `event:`
    # field) needs the event-by-event reading.
    if body.count(b"\n") != 2 * body.count(b"\n\ndata: ") or b"[DONE]" in body:
        return None
    try:
        chunks = orjson.loads(b"[" + body.replace(b"\n\ndata: ", b",") + b"]")
    except orjson.JSONDecodeError:
        return None
    return chunks if isinstance(chunks, list) else None


def stream_data(stream: bytes) -> list[bytes]:
    """The data of each event of a whole stream, as `sse.SSEDecoder` reads it, but cut at
    its blank lines in one call: the decoder reads line by line (kept for CRLF streams)."""
    if b"\r" in stream:
        decoder = SSEDecoder(max_event_size=len(stream) + 1)
        return [data for _, data in decoder.feed(stream) + decoder.flush()]
    found: list[bytes] = []
    for event in stream.split(b"\n\n"):
        if event.startswith(b"data:") and b"\n" not in event:
            found.append(event[5:].lstrip(b" "))  # one line of data: the usual event
        elif event:
            lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line[:5] == b"data:"]
            if lines:
                found.append(b"\n".join(lines))
    return found


def reply_finished(reply: dict[str, Any] | None) -> bool:
    """Whether a reassembled reply says it ended (every choice has a finish reason)."""
    if not reply or reply.get("error") is not None:
        return False
    if "choices" not in reply:
        return reply.get("status") == "completed"
    choices = reply["choices"]
    return bool(choices) and all(c.get("finish_reason") for c in choices)
