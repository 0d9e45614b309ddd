"""Reads an OpenAI-format response as it passes and reassembles what it said.

Used by features that need the usage or the reply (token limits, chat logs,
usage accounting); when none does, bodies pass through without being parsed.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..sse import SSEDecoder
from .fields import TEXT_FIELDS, usage_of

MAX_BUFFERED_JSON = 32 * 1024 * 1024
_META = ("id", "object", "model", "created", "system_fingerprint", "service_tier")
_TEXT_FIELDS = frozenset(TEXT_FIELDS)


class ResponseObserver:
    """Feed it the body chunks; `result()` gives the reassembled reply and usage."""

    __slots__ = ("_chunks", "_decoder", "_size", "assembler", "streaming")

    def __init__(self, content_type: str) -> None:
        self.streaming = content_type.startswith("text/event-stream")
        # A JSON body is only kept, to be parsed once at the end: it needs no decoder.
        self._decoder = SSEDecoder() if self.streaming else None
        self.assembler = ReplyAssembler() if self.streaming else None
        self._chunks: list[bytes] | None = []  # None once past MAX_BUFFERED_JSON
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        if self.assembler is not None:
            assert self._decoder is not None
            for _, data in self._decoder.feed(chunk):
                self.assembler.add_event(data)
        elif self._chunks is not None:
            self._size += len(chunk)
            if self._size > MAX_BUFFERED_JSON:
                self._chunks = None
            else:
                self._chunks.append(chunk)

    def result(self) -> dict[str, Any] | None:
        """The reply in OpenAI's non-streamed shape, or None if unreadable."""
        if self.assembler is not None:
            assert self._decoder is not None
            for _, data in self._decoder.flush():
                self.assembler.add_event(data)
            return self.assembler.result()
        body = self.body()
        return parse_reply(body) if body else None

    def body(self) -> bytes | None:
        """A JSON reply's bytes as kept (None past MAX_BUFFERED_JSON); one chunk, the usual
        small reply, as it is, without a copy."""
        chunks = self._chunks
        if not chunks:
            return None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_reply(body: bytes) -> dict[str, Any] | None:
    """A JSON reply, parsed (embedding vectors left out), or None if it is not an object."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return strip_vectors(parsed) if isinstance(parsed, dict) else None


def strip_vectors(body: dict[str, Any]) -> dict[str, Any]:
    """Embedding responses without the vectors: they are large and say nothing about usage."""
    if body.get("object") == "list" and isinstance(body.get("data"), list):
        data = [
            {k: v for k, v in item.items() if k != "embedding"}
            for item in body["data"]
            if isinstance(item, dict)
        ]
        return {**body, "data": data}
    return body


class ReplyAssembler:
    """Joins `chat.completion.chunk` / `text_completion` deltas into one reply.

    Every chunk counts, the first one too, and every choice index (`n > 1`).
    Streamed Responses API events keep the latest full `response` they carry,
    plus the output text deltas in case the stream ends before `response.completed`.
    Text comes in pieces, joined once in `result()` (not one string copy per chunk).
    """

    def __init__(self) -> None:
        self.meta: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.error: Any = None
        self.done = False
        self.events = 0
        self.response: dict[str, Any] | None = None
        self.response_text: list[str] = []
        # (choice index, field) -> pieces; "text" is a completion's, others its message's.
        self._pieces: dict[tuple[int, str], list[str]] = {}
        self._meta_seen: Any = None  # the fields of the last chunk whose meta was taken

    def add_event(self, data: bytes) -> None:
        if data == b"[DONE]":
            self.done = True
            return
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if isinstance(chunk, dict):
            self.add_chunk(chunk)

    def add_events(self, datas: list[bytes]) -> None:
        """`add_event` for each of many events' data, decoded in one call when all are JSON."""
        payloads = [data for data in datas if data != b"[DONE]"]
        if len(payloads) < len(datas):
            self.done = True
        try:
            chunks = orjson.loads(b"[" + b",".join(payloads) + b"]")
        except orjson.JSONDecodeError:
            chunks = None
        if not isinstance(chunks, list) or len(chunks) != len(payloads):
            for data in payloads:  # one of them is not JSON: decode each on its own
                self.add_event(data)
            return
        for chunk in chunks:
            if isinstance(chunk, dict):
                self.add_chunk(chunk)

    def add_chunk(self, chunk: dict[str, Any]) -> None:
        self.events += 1
        if "error" in chunk and chunk["error"] is not None:
            self.error = chunk["error"]
            return
        if "usage" in chunk or "response" in chunk:
            usage = usage_of(chunk)
            if usage is not None:
                self.usage = usage
        event_type = chunk.get("type")
        if isinstance(event_type, str) and event_type.startswith("response."):
            self._add_response_event(event_type, chunk)
            return
        keys = chunk.keys()
        if len(self.meta) < len(_META) and keys != self._meta_seen:
            self._meta_seen = keys  # chunks of one stream mostly share their fields
            for key in _META:
                if key in chunk and key not in self.meta:
                    self.meta[key] = chunk[key]
        choices = chunk.get("choices")
        if isinstance(choices, list):
            object_type = chunk.get("object", "")
            for choice in choices:
                if isinstance(choice, dict):
                    self._add_choice(choice, object_type)

    def _add_response_event(self, event_type: str, event: dict[str, Any]) -> None:
        response = event.get("response")
        if isinstance(response, dict):
            self.response = response
        if event_type == "response.output_text.delta" and isinstance(event.get("delta"), str):
            self.response_text.append(event["delta"])

    def _add_choice(self, choice: dict[str, Any], object_type: str) -> None:
        index = choice.get("index", 0)
        if not isinstance(index, int):
            return
        slot = self.choices.get(index)
        if slot is None:
            slot = self.choices[index] = {"index": index, "finish_reason": None}
        finish = choice.get("finish_reason")
        if finish:
            slot["finish_reason"] = finish
        if "text" in choice or object_type == "text_completion":
            text = choice.get("text")
            self._add_piece(slot, index, "text", text if isinstance(text, str) else "")
            return
        delta = choice.get("delta") or choice.get("message") or {}
        if not isinstance(delta, dict):
            return
        if len(delta) == 1 and "message" in slot:  # the usual delta: a piece of text
            pieces = self._pieces.get((index, "content"))
            content = delta.get("content")
            if pieces is not None and isinstance(content, str):
                pieces.append(content)
                return
        message = slot.get("message")
        if message is None:
            message = slot["message"] = {"role": "assistant", "content": None}
        for field, value in delta.items():
            if field in _TEXT_FIELDS:
                if isinstance(value, str):
                    self._add_piece(message, index, field, value)
            elif field == "role":
                if value:
                    message["role"] = value
            elif field == "tool_calls":
                for call in value or ():
                    if isinstance(call, dict):
                        self._add_tool_call(message, call)
            elif field == "function_call" and isinstance(value, dict):
                joined = message.setdefault("function_call", {"name": "", "arguments": ""})
                joined["name"] += value.get("name") or ""
                joined["arguments"] += value.get("arguments") or ""

    def _add_piece(self, into: dict[str, Any], index: int, field: str, piece: str) -> None:
        pieces = self._pieces.get((index, field))
        if pieces is None:
            pieces = self._pieces[(index, field)] = []
            into[field] = ""  # its place among the fields; the text is joined in `result()`
        pieces.append(piece)

    @staticmethod
    def _add_tool_call(message: dict[str, Any], call: dict[str, Any]) -> None:
        calls: list[dict[str, Any]] = message.setdefault("tool_calls", [])
        index = call.get("index")
        if not isinstance(index, int) or index < 0 or index > 1024:
            # Some servers omit the index: a new id starts a call, no id continues the last.
            new = call.get("id") and (not calls or calls[-1]["id"] != call["id"])
            index = len(calls) if new or not calls else len(calls) - 1
        while len(calls) <= index:
            calls.append(
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
            )
        slot = calls[index]
        if call.get("id"):
            slot["id"] = call["id"]
        if call.get("type"):
            slot["type"] = call["type"]
        function = call.get("function")
        if isinstance(function, dict):
            slot["function"]["name"] += function.get("name") or ""
            slot["function"]["arguments"] += function.get("arguments") or ""

    def result(self) -> dict[str, Any]:
        if self.response is not None or self.response_text:
            reply = dict(self.response or {})
            if self.response_text:
                reply.setdefault("output_text", "".join(self.response_text))
        else:
            for (index, field), pieces in self._pieces.items():
                slot = self.choices[index]
                (slot if field == "text" else slot["message"])[field] = "".join(pieces)
            reply = dict(self.meta)
            if reply.get("object") == "chat.completion.chunk":
                reply["object"] = "chat.completion"
            reply["choices"] = [self.choices[i] for i in sorted(self.choices)]
        reply["usage"] = self.usage
        if self.error is not None:
            reply["error"] = self.error
        return reply
