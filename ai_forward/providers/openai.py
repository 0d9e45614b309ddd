"""OpenAI and OpenAI-compatible servers (LocalAI, vLLM, Ollama, Groq, ...): no translation."""

from __future__ import annotations

import orjson

from .base import JSON, Endpoint, ProviderRequest, loads_object

PATHS = (
    "/v1/chat/completions",
    "/chat/completions",
    "/v1/completions",
    "/completions",
    "/v1/embeddings",
    "/embeddings",
)


class OpenAICompatible:
    """The body goes as it is to the origin + the client's path, with a Bearer key."""

    name: str = "openai"
    paths: tuple[str, ...] = PATHS

    def build(self, body: JSON, endpoint: Endpoint) -> ProviderRequest:
        url = endpoint.origin.url(endpoint.raw_path or endpoint.path, endpoint.query)
        return ProviderRequest(url, self.headers(endpoint.key), orjson.dumps(body))

    @staticmethod
    def headers(key: str | None) -> list[tuple[bytes, bytes]]:
        headers = [(b"content-type", b"application/json"), (b"accept-encoding", b"identity")]
        if key:
            headers.append((b"authorization", b"Bearer " + key.encode()))
        return headers

    def translate_reply(self, body: bytes, model: str) -> bytes:
        return body

    def stream(self, model: str, include_usage: bool) -> Passthrough:
        return Passthrough()

    def error_message(self, body: bytes) -> str:
        error = (loads_object(body) or {}).get("error")
        if isinstance(error, dict):
            return str(error.get("message", ""))
        return body[:500].decode("utf-8", "replace") or "no error message"


class Passthrough:
    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def close(self) -> bytes:
        return b""
