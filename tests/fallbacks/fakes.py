"""Helpers for the fallbacks tests: an OpenAI upstream that fails, and the gateway's settings."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakes import FakeUpstream, Handler, Recorded, json_response
from tests.providers.fakes import env

CHAINS = "gpt-4o=claude-3-5-sonnet-latest,gemini-1.5-pro;gpt-4o-mini=claude-3-5-haiku-latest"
OVERLOADED = {"error": {"message": "overloaded", "type": "server_error", "code": None}}
TOO_LONG = {
    "error": {
        "message": "This model's maximum context length is 128000 tokens.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}
DEFAULTS = {"FALLBACKS": CHAINS, "RETRIES": "1", "RETRY_BACKOFF": "0.01"}
RATE_LIMITED = {"error": {"message": "slow down", "type": "requests", "code": "rate_limit"}}


def failing(status: int, body: Any) -> Handler:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await json_response(body, status=status)

    return handler


def settings(upstream: FakeUpstream, providers: FakeUpstream, **extra: Any) -> dict[str, Any]:
    """The providers' test settings with FALLBACKS, quick retries and one retry."""
    return env(upstream, providers, **{**DEFAULTS, **extra})
