"""Fake Anthropic, Gemini and Azure OpenAI upstreams answering in their documented formats."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
import orjson
from aiohttp import web

from tests.fakes import (
    FakeUpstream,
    Handler,
    ProxyServer,
    Recorded,
    default_handler,
    json_response,
    stream_response,
)

DATA = Path(__file__).parent / "data"


def events(name: str) -> list[bytes]:
    """A recorded SSE stream split into its events (CRLF or LF separated)."""
    raw = (DATA / name).read_bytes()
    sep = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
    return [part + sep for part in raw.split(sep) if part.strip()]


def data(name: str) -> Any:
    return orjson.loads((DATA / name).read_bytes())


def anthropic_text(text: str = "Hi from Claude") -> dict[str, Any]:
    return {
        "id": "msg_text",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 4},
    }


def gemini_text(text: str = "Hi from Gemini") -> dict[str, Any]:
    return {
        "candidates": [
            {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP"}
        ],
        "usageMetadata": {"promptTokenCount": 6, "candidatesTokenCount": 3, "totalTokenCount": 9},
        "modelVersion": "gemini-2.0-flash",
    }


async def providers_handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
    """Anthropic at /v1/messages, Gemini at /v1beta/models/..., Azure at /openai/deployments/..."""
    if rec.path == "/v1/messages":
        body = rec.json()
        if body.get("stream"):
            return await stream_response(request, events("anthropic_stream.sse"))
        if body.get("tools"):
            return await json_response(data("anthropic_reply.json"))
        return await json_response(anthropic_text())
    if rec.path.endswith(":streamGenerateContent"):
        return await stream_response(request, events("gemini_stream.sse"))
    if rec.path.endswith(":generateContent"):
        if rec.json().get("tools"):
            return await json_response(data("gemini_reply.json"))
        return await json_response(gemini_text())
    if rec.path == "/v1/models":
        return await json_response(
            {"object": "list", "data": [{"id": "gpt-4o", "object": "model", "owned_by": "openai"}]}
        )
    return await default_handler(request, rec)


def failing(status: int, body: Any, delay: float = 0.0) -> Handler:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        if delay:
            await asyncio.sleep(delay)
        return await json_response(body, status=status)

    return handler


def by_path(routes: dict[str, Handler], fallback: Handler = providers_handler) -> Handler:
    """The handler of the first `routes` key found in the request path, else `fallback`."""

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        for fragment, chosen in routes.items():
            if fragment in rec.path:
                return await chosen(request, rec)
        return await fallback(request, rec)

    return handler


def slow(delay: float, then: Handler = providers_handler) -> Handler:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        await asyncio.sleep(delay)
        return await then(request, rec)

    return handler


HI: list[Any] = [{"role": "user", "content": "hi"}]


def env(upstream: FakeUpstream, providers: FakeUpstream, **extra: Any) -> dict[str, Any]:
    """Gateway settings: `upstream` as the route, `providers` as Anthropic, Gemini and Azure."""
    return {
        "OPENAI_BASE_URL": upstream.url,
        "OPENAI_API_KEY": "sk-real-1",
        "FORWARD_KEY": "fk-test",
        "ANTHROPIC_API_KEY": "sk-ant-1,sk-ant-2",
        "ANTHROPIC_BASE_URL": providers.url,
        "GEMINI_API_KEY": "AIza-1",
        "GEMINI_BASE_URL": providers.url + "/v1beta",
        "AZURE_OPENAI_ENDPOINT": providers.url,
        "AZURE_OPENAI_API_KEY": "az-1",
        "AZURE_OPENAI_MODEL_MAPPER": "gpt-3.5-turbo=gpt-35-turbo",
        "MODEL_ROUTES": "gpt-3.5-*=azure;gpt-35-*=azure",
        **extra,
    }


def client(proxy: ProxyServer, key: str = "fk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key=key, max_retries=0)
