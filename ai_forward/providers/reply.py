"""Answers made or translated by the gateway, in the shape the relay reads."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Protocol

from ..sse import DONE
from ..types import Headers
from ..upstream import ResponseTranslator, UpstreamResponse
from .base import ChunkWriter, Provider, StreamTranslator, translate_error

MAX_BODY = 32 * 1024 * 1024
# Upstream headers worth keeping on a translated answer.
KEPT = (b"retry-after", b"request-id", b"x-request-id", b"x-ratelimit-", b"anthropic-ratelimit-")
JSON_TYPE = (b"content-type", b"application/json")
SSE_TYPE = (b"content-type", b"text/event-stream")


class Releasable(Protocol):
    def release(self) -> Any: ...

    def close(self) -> None: ...


class Body:
    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._chunks = chunks

    def iter_any(self) -> AsyncIterable[bytes]:
        return self._chunks


class Reply:
    """An answer for the relay: a status, headers and a body stream."""

    def __init__(
        self,
        status: int,
        headers: Headers,
        chunks: AsyncIterable[bytes],
        origin: Releasable | None = None,
    ) -> None:
        self.status = status
        self.raw_headers = headers
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
        self.content = Body(chunks)
        self.origin = origin

    @classmethod
    def json(cls, status: int, body: bytes, extra: Headers | None = None) -> Reply:
        headers = [JSON_TYPE, (b"content-length", str(len(body)).encode()), *(extra or [])]
        return cls(status, headers, once(body))

    def release(self) -> Any:
        return self.origin.release() if self.origin is not None else None

    def close(self) -> None:
        if self.origin is not None:
            self.origin.close()


async def once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def read_all(response: UpstreamResponse, limit: int = MAX_BODY) -> bytes:
    """The whole body, at most `limit` bytes (the rest is dropped)."""
    data = bytearray()
    async for chunk in response.content.iter_any():
        if len(data) < limit:
            data += chunk[: limit - len(data)]
    return bytes(data)


def kept_headers(response: UpstreamResponse) -> Headers:
    return [
        (name.lower(), value)
        for name, value in response.raw_headers
        if name.lower().startswith(KEPT)
    ]


async def translated_stream(
    response: UpstreamResponse, translator: StreamTranslator, provider: str
) -> AsyncIterator[bytes]:
    """OpenAI chunks of the provider's stream; one the translator can't read ends in an
    error event (an event too large goes up to the relay, which ends the stream)."""
    try:
        async for chunk in response.content.iter_any():
            out = translator.feed(chunk)
            if out:
                yield out
        tail = translator.close()
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
        message = f"the stream was not in the provider's documented format ({type(exc).__name__})"
        tail = ChunkWriter.error(provider, message, "stream_broken") + DONE
    if tail:
        yield tail


def translator(provider: Provider, model: str, include_usage: bool) -> ResponseTranslator:
    """Turns `provider`'s answer (whole, streamed or an error) into OpenAI's format."""

    async def translate(response: UpstreamResponse) -> UpstreamResponse:
        try:
            extra = kept_headers(response)
            if response.status >= 400:
                message = provider.error_message(await read_all(response, 64 * 1024))
                status, body = translate_error(provider.name, response.status, message)
                response.release()
                return Reply.json(status, body, extra)
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                translating = provider.stream(model, include_usage)
                stream = translated_stream(response, translating, provider.name)
                return Reply(response.status, [SSE_TYPE, *extra], stream, response)
            raw = await read_all(response)
            response.release()
        except BaseException:
            response.close()
            raise
        try:
            body = provider.translate_reply(raw, model)
        except (ValueError, AttributeError, TypeError, KeyError):
            status, body = translate_error(
                provider.name, 502, "the reply was not in the provider's documented format"
            )
            return Reply.json(status, body, extra)
        return Reply.json(response.status, body, extra)

    return translate
