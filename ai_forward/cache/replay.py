"""An entry holds the answer as the upstream sent it; this builds either form from it.

A request in the entry's own form gets the stored bytes (a stream minus its usage
chunk when the client did not ask for usage). A streamed request for a JSON entry
gets the events the upstream would send for that reply (whole texts in one delta
each, usage when asked, `[DONE]` for chat and completions); a non-streamed request
for a stream entry gets the stream reassembled. Each is built once, ready to send,
and kept (see `prepared.py`): a hit only sends bytes.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from typing import Any

import orjson

from ..exchange import LocalAnswer
from ..observe.reply import ReplyAssembler
from ..observe.stream_usage import has_usage, is_usage_only
from ..sse import DONE, SSEDecoder, encode_event, split_events
from .guard import Entry

FINISHED = frozenset({"stop", "length", "tool_calls"})
_FINISH_REASON = re.compile(rb'"finish_reason":\s*"([^"]*)"')
JSON = "application/json"
EVENT_STREAM = "text/event-stream; charset=utf-8"


def answer(entry: Entry, kind: str, streamed: bool, usage: bool) -> LocalAnswer:
    """The entry as the request wants it, ready to send: JSON, or the events of a stream."""
    if entry.form == "sse":
        if not streamed:
            return json_answer(orjson.dumps(reply_from(entry.body)))
        if not usage and has_usage(entry.body):  # stored for a client that asked for it
            return stream_answer([without_usage(entry.body)])
        return stream_answer([entry.body])
    reply = entry.reply or {}
    if not streamed or kind == "embedding":
        return json_answer(entry.body)
    if kind == "response":
        return stream_answer(response_events(reply))
    return stream_answer(choice_events(reply, kind, usage))


def json_answer(body: bytes) -> LocalAnswer:
    length = str(len(body)).encode()
    headers = [(b"content-type", JSON.encode()), (b"content-length", length)]
    return LocalAnswer(200, headers, body, JSON)


def stream_answer(events: list[bytes]) -> LocalAnswer:
    """Events sent as one body, without a length, as an upstream's stream comes."""
    return LocalAnswer(
        200, [(b"content-type", EVENT_STREAM.encode())], b"".join(events), EVENT_STREAM
    )


def without_usage(stream: bytes) -> bytes:
    """A whole stream minus its usage-only chunk."""
    return b"".join(event for event in split_events(stream) if not is_usage_only(event))


def choice_events(reply: dict[str, Any], kind: str, usage: bool) -> list[bytes]:
    """A chat or text completion as chunks: each choice's content, then its finish."""
    chat = kind == "chat"
    head: dict[str, Any] = {
        key: reply[key]
        for key in ("id", "created", "model", "system_fingerprint", "service_tier")
        if key in reply
    }
    head["object"] = "chat.completion.chunk" if chat else "text_completion"
    events: list[bytes] = []
    for choice in reply.get("choices") or ():
        index = choice.get("index", 0)
        if chat:
            delta = chat_delta(choice.get("message") or {})
            first = {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}
            last: dict[str, Any] = {"index": index, "delta": {}, "logprobs": None}
        else:
            first = {"index": index, "text": choice.get("text") or "", "logprobs": None}
            first["finish_reason"] = None
            last = {"index": index, "text": "", "logprobs": None}
        last["finish_reason"] = choice.get("finish_reason")
        events.append(encode_event({**head, "choices": [first]}))
        events.append(encode_event({**head, "choices": [last]}))
    if usage and isinstance(reply.get("usage"), dict):
        events.append(encode_event({**head, "choices": [], "usage": reply["usage"]}))
    events.append(DONE)
    return events


def chat_delta(message: dict[str, Any]) -> dict[str, Any]:
    delta = {k: v for k, v in message.items() if v is not None and k != "tool_calls"}
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(calls)]
    return delta


def response_events(reply: dict[str, Any]) -> list[bytes]:
    """A Responses API reply as its stream of typed events, ending with `response.completed`."""
    numbers = itertools.count()
    events: list[bytes] = []

    def add(kind: str, **fields: Any) -> None:
        payload = {"type": kind, "sequence_number": next(numbers), **fields}
        events.append(encode_event(payload, kind))

    started = {**reply, "status": "in_progress", "output": [], "usage": None}
    add("response.created", response=started)
    add("response.in_progress", response=started)
    for i, item in enumerate(reply.get("output") or ()):
        message = item.get("type") == "message"
        shell = {**item, "status": "in_progress", **({"content": []} if message else {})}
        add("response.output_item.added", output_index=i, item=shell)
        parts: Iterable[dict[str, Any]] = item.get("content") or () if message else ()
        for j, part in enumerate(parts):
            where = {"item_id": item.get("id"), "output_index": i, "content_index": j}
            text = part.get("text") if part.get("type") == "output_text" else None
            add("response.content_part.added", **where, part={**part, "text": ""} if text else part)
            if text is not None:
                add("response.output_text.delta", **where, delta=text, logprobs=[])
                add("response.output_text.done", **where, text=text, logprobs=[])
            add("response.content_part.done", **where, part=part)
        add("response.output_item.done", output_index=i, item=item)
    add("response.completed", response=reply)
    return events


def reply_from(body: bytes) -> dict[str, Any] | None:
    """The reply a complete answer body (JSON or SSE) carries, in the non-streamed shape."""
    if body[:1] in (b"{", b"[", b" ", b"\n"):
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, dict) else None
    decoder, assembler = SSEDecoder(), ReplyAssembler()
    for _, data in decoder.feed(body) + decoder.flush():
        assembler.add_event(data)
    if not assembler.events:
        return None
    reply = assembler.result()
    reply.pop("output_text", None)  # the SDKs compute it; never part of the API's object
    return reply


def stream_storable(kind: str, body: bytes) -> bool:
    """Whether a whole stream is complete and successful, from its bytes (no decoding)."""
    # Text inside a string is escaped (`{\"error\"`): these bytes are only ever JSON keys.
    if b'{"error"' in body or b'"type":"error"' in body:
        return False
    if kind == "response":
        return b'"response.completed"' in body
    if not body.endswith(DONE):
        return False
    reasons = _FINISH_REASON.findall(body)
    return bool(reasons) and all(reason.decode() in FINISHED for reason in reasons)


def storable(kind: str, reply: dict[str, Any]) -> bool:
    """Whether a reply is complete and successful: only those are cached."""
    if reply.get("error") is not None:
        return False
    if kind == "response":
        return reply.get("status") == "completed"
    if kind == "embedding":
        data = reply.get("data")
        return isinstance(data, list) and bool(data)
    choices = reply.get("choices")
    return (
        isinstance(choices, list)
        and bool(choices)
        and all(isinstance(c, dict) and c.get("finish_reason") in FINISHED for c in choices)
    )
