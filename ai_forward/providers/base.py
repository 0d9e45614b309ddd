"""The provider interface: pure functions between OpenAI's format and a provider's.

A provider never does I/O. Given an OpenAI-format chat body it builds the
upstream request; given the upstream's answer it gives back OpenAI's format:
a whole body, a stream fed chunk by chunk, or an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from yarl import URL

from ..errors import UnsupportedFeature
from ..origin import Origin
from ..sse import DONE, encode_event
from ..types import Headers

JSON = dict[str, Any]

# OpenAI error (status, type, code) by upstream HTTP status, shared by every provider.
ERROR_KINDS: dict[int, tuple[int, str, str | None]] = {
    400: (400, "invalid_request_error", None),
    401: (401, "authentication_error", "invalid_api_key"),
    403: (403, "permission_error", "forbidden"),
    404: (404, "invalid_request_error", "model_not_found"),
    408: (504, "upstream_error", "upstream_timeout"),
    413: (413, "invalid_request_error", "body_too_large"),
    422: (400, "invalid_request_error", None),
    429: (429, "rate_limit_exceeded", "rate_limit_exceeded"),
    500: (500, "server_error", None),
    502: (502, "upstream_error", None),
    503: (503, "server_error", "overloaded"),
    504: (504, "upstream_error", "upstream_timeout"),
    529: (503, "server_error", "overloaded"),
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and as whom to call a provider; `path` is the client's path after the route."""

    origin: Origin
    key: str | None = field(default=None, repr=False)
    path: str = "/v1/chat/completions"  # canonical, for matching
    raw_path: str = ""  # as the client sent it (default: `path`), for the URL
    query: str = ""
    deployment: str = ""
    api_version: str = ""
    max_tokens: int = 4096


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    url: URL
    headers: Headers
    body: bytes


class StreamTranslator(Protocol):
    """Fed the upstream's stream bytes; returns OpenAI `chat.completion.chunk` SSE bytes."""

    def feed(self, chunk: bytes) -> bytes: ...

    def close(self) -> bytes:
        """What is left at the end of the upstream stream, `data: [DONE]` included."""
        ...


class Provider(Protocol):
    name: str
    # Client paths (after the route prefix) this provider serves.
    paths: tuple[str, ...]

    def build(self, body: JSON, endpoint: Endpoint) -> ProviderRequest: ...

    def translate_reply(self, body: bytes, model: str) -> bytes: ...

    def stream(self, model: str, include_usage: bool) -> StreamTranslator: ...

    def error_message(self, body: bytes) -> str: ...


def translate_error(provider: str, status: int, message: str) -> tuple[int, bytes]:
    """An upstream error as the OpenAI error with the same meaning."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    default: tuple[int, str, str | None] = (status, kind, None)
    new_status, kind, code = ERROR_KINDS.get(status, default)
    error = {"message": f"{provider}: {message}", "type": kind, "param": None, "code": code}
    return new_status, orjson.dumps({"error": error})


def unsupported(provider: str, param: str, why: str = "") -> UnsupportedFeature:
    detail = f" ({why})" if why else ""
    return UnsupportedFeature(
        f"'{param}' is not supported by {provider}{detail}; remove it or use a model of "
        f"another provider",
        param=param,
    )


def check_params(provider: str, body: JSON, known: Iterable[str], neutral: JSON) -> None:
    """Refuse any parameter the provider cannot honour, unless it has its neutral value."""
    allowed = set(known)
    for name, value in body.items():
        if name in allowed or value is None:
            continue
        if name in neutral and neutral[name] == value:
            continue
        raise unsupported(provider, name)


# Parameters whose default value changes nothing, accepted by every provider.
NEUTRAL: JSON = {
    "n": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logprobs": False,
    "store": False,
    "parallel_tool_calls": True,
    "modalities": ["text"],
}
# Accepted everywhere: they only concern OpenAI's own bookkeeping or the gateway.
IGNORED = ("service_tier", "metadata", "store", "stream_options", "user")


def text_of(content: Any, provider: str, role: str) -> str:
    """The text of a message content that may only hold text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for part in content if isinstance(content, list) else [content]:
        if isinstance(part, dict) and part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise unsupported(provider, "messages", f"{kind} content in a {role} message")
    return "\n".join(texts)


def data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:` URL, or None for any other URL."""
    if not url.startswith("data:"):
        return None
    head, _, data = url[5:].partition(",")
    media, _, encoding = head.partition(";")
    if encoding != "base64" or not data:
        raise UnsupportedFeature(
            "an image data URL must be base64: data:image/png;base64,...", param="messages"
        )
    return media or "application/octet-stream", data


def arguments(raw: Any) -> Any:
    """Tool call arguments (a JSON string in OpenAI's format) as an object."""
    if isinstance(raw, dict):
        return raw
    try:
        value = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        raise UnsupportedFeature(
            "tool_calls[].function.arguments must be a JSON object encoded as a string",
            param="messages",
        ) from None
    return value if isinstance(value, dict) else {"value": value}


def stop_list(stop: Any) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else [str(s) for s in stop]


def usage(prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> JSON:
    result: JSON = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    if reasoning:
        result["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return result


def completion(
    id_: str, model: str, choices: list[JSON], usage_: JSON | None, created: int | None = None
) -> JSON:
    return {
        "id": id_,
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage_,
    }


class ChunkWriter:
    """Emits OpenAI stream chunks for one reply; shared by the stream translators."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = "chatcmpl-" + str(time.time_ns())
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self.usage: JSON | None = None
        self.finished = False

    def chunk(self, delta: JSON, finish: str | None = None, index: int = 0) -> bytes:
        payload = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        }
        return encode_event(payload)

    def end(self) -> bytes:
        out = b""
        if self.include_usage and self.usage is not None:
            payload = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": self.usage,
            }
            out += encode_event(payload)
        return out + DONE

    @staticmethod
    def error(provider: str, message: str, code: str = "upstream_error") -> bytes:
        error = {"message": f"{provider}: {message}", "type": "upstream_error", "code": code}
        return encode_event({"error": error})


def translate_events(
    events: Iterable[tuple[bytes | None, bytes]], translate: Callable[[JSON], bytes]
) -> bytes:
    """Each decoded SSE event that is a JSON object, through `translate`, joined."""
    out = bytearray()
    for _, data in events:
        event = loads_object(data)
        if event is not None:
            out += translate(event)
    return bytes(out)


def loads_object(data: bytes) -> JSON | None:
    """`data` parsed as a JSON object, or None."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
