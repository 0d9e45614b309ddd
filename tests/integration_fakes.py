"""Helpers for the integration tests: every feature on at once, and what the gateway printed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from loguru import logger

from tests.fakes import FakeUpstream, Recorded, json_response
from tests.providers.fakes import env as providers_env
from tests.users.fakes import TOKEN

SECRETS = ("sk-real-1", "sk-ant-1", "sk-ant-2", "AIza-1", "az-1", "fk-test", TOKEN)
CHAT = "/v1/chat/completions"
HI: list[Any] = [{"role": "user", "content": "hi"}]


def all_features(
    upstream: FakeUpstream, providers: FakeUpstream, tmp_path: Path, **extra: Any
) -> dict[str, Any]:
    """Settings turning every feature on: providers, users, limits, chat logs, retries."""
    settings = providers_env(
        upstream,
        providers,
        ADMIN_TOKEN=TOKEN,
        STORE_URL=f"sqlite:///{tmp_path}/users.db",
        USAGE_FLUSH_INTERVAL=60,
        LOG_CHAT="true",
        LOG_DIR=str(tmp_path / "logs"),
        RETRIES=2,
        RETRY_BACKOFF=0.01,
        RETRY_BACKOFF_MAX=0.05,
        TPM_LIMIT="100000/minute",
        REQ_RATE_LIMIT=f"{CHAT}=100/minute",
    )
    return {**settings, **extra}


def fails_first(status: int = 500) -> Any:
    """A handler answering `status` to its first request and the providers' reply after."""
    from tests.providers.fakes import providers_handler

    seen: list[int] = []

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        seen.append(1)
        if len(seen) == 1:
            return await json_response({"error": {"message": "boom"}}, status=status)
        return await providers_handler(request, rec)

    return handler


def post(url: str, key: str, **body: Any) -> httpx.Response:
    return httpx.post(
        url + CHAT,
        json={"model": "gpt-4o-mini", "messages": HI, **body},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def remaining(response: httpx.Response, unit: str) -> int:
    return int(response.headers[f"x-ratelimit-remaining-{unit}"])


@pytest.fixture
def loguru_lines() -> Iterator[list[str]]:
    """Every loguru message (with its exception text) while the test runs."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG")
    yield lines
    logger.remove(sink)


def access_lines(capfd: pytest.CaptureFixture[str], seen: list[str], count: int) -> list[str]:
    """Access-log lines printed so far, waiting for at least `count`; `seen` keeps all output."""
    deadline = time.monotonic() + 3
    while True:
        out, err = capfd.readouterr()
        seen += (out + err).splitlines()
        lines = [line for line in seen if "| ACCESS" in line]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


@pytest.fixture
def providers() -> Iterator[FakeUpstream]:
    """One fake answering as Anthropic, Gemini and Azure OpenAI (by path)."""
    from tests.providers.fakes import providers_handler

    fake = FakeUpstream()
    fake.handler = providers_handler
    fake.start()
    yield fake
    fake.stop()
