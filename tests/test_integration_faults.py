"""Features together under faults: cut streams, clients hanging up, and no secret leaking."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import pytest
from aiohttp import web

from ai_forward.observe.tokens import prompt_tokens, reply_tokens
from tests.chatlog.fakes import all_log_bytes, read_records, wait_records
from tests.fakes import FakeUpstream, ProxyServer, Recorded, chunk, sse, stream_response
from tests.integration_fakes import (
    CHAT,
    HI,
    SECRETS,
    access_lines,
    all_features,
    post,
    remaining,
)
from tests.processes import aifd_instance
from tests.providers.fakes import events, providers_handler
from tests.users.fakes import TOKEN, admin, create, sdk

Factory = Callable[..., ProxyServer]
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5"}


def cut_streams(cut_after: int = 3, delay: float = 0.0) -> Callable[..., Any]:
    """Streams of both the OpenAI route and Anthropic, cut (or slowed down by `delay`)."""

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        if rec.path == "/v1/messages" and rec.json().get("stream"):
            return await stream_response(
                request, events("anthropic_stream.sse"), cut_after=cut_after, delay=delay
            )
        if rec.path.endswith(CHAT) and rec.json().get("stream"):
            chunks = [chunk("par", role="assistant"), *(chunk("tial") for _ in range(40))]
            return await stream_response(request, sse(*chunks), cut_after=cut_after, delay=delay)
        return await providers_handler(request, rec)

    return handler


def stream_text(proxy: ProxyServer, key: str, model: str) -> httpx.Response:
    with httpx.stream(
        "POST",
        proxy.url + CHAT,
        json={"model": model, "messages": HI, "stream": True},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    ) as response:
        response.read()
    return response


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_stream_cut_by_the_upstream_counts_what_was_received(
    upstream: FakeUpstream,
    providers: FakeUpstream,
    proxy_factory: Factory,
    tmp_path: Path,
    loguru_lines: list[str],
    provider: str,
) -> None:
    upstream.handler = providers.handler = cut_streams(cut_after=6)
    proxy = proxy_factory(**all_features(upstream, providers, tmp_path))
    model = MODELS[provider]
    key = create(proxy.url, "cal")
    cut = stream_text(proxy, key, model)
    assert cut.status_code == 200
    assert "upstream connection broke" in cut.text
    assert "data: [DONE]" not in cut.text
    record = wait_records(tmp_path / "logs", 1)[0]
    assert record["complete"] is False
    assert "upstream stream broke" in record["error"]
    assert record["reply"]["choices"][0]["message"]["content"]

    # what the cut exchange cost: its usage if the provider said so, else a count of what came
    if record["usage"] is not None:
        counted = record["usage"]["total_tokens"]
    else:
        body = {"model": model, "messages": HI, "stream": True}
        counted = prompt_tokens(body) + reply_tokens(record["reply"])
    assert counted > 0
    after = stream_text(proxy, key, model)  # same estimate, and cut again
    assert remaining(cut, "tokens") - remaining(after, "tokens") == counted
    # the user's usage counts the same
    usage = admin(proxy.url).get("/admin/usage", params={"user": "cal"}).json()["totals"]["cal"]
    assert (usage["requests"], usage["total_tokens"]) == (2, 2 * counted)
    assert not [line for line in loguru_lines if "after-hook" in line or "Traceback" in line]

    served = post(proxy.url, "fk-test", model=model)
    assert served.status_code == 200 and served.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_client_hanging_up_mid_stream_is_felt_upstream_and_recorded(
    upstream: FakeUpstream,
    providers: FakeUpstream,
    proxy_factory: Factory,
    tmp_path: Path,
    loguru_lines: list[str],
    provider: str,
) -> None:
    upstream.handler = providers.handler = cut_streams(cut_after=1000, delay=0.1)
    proxy = proxy_factory(**all_features(upstream, providers, tmp_path))
    key = create(proxy.url, "wes", rpm=100, tpm=100000)
    model = MODELS[provider]
    fake = upstream if provider == "openai" else providers

    async def hang_up() -> None:
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                proxy.url + CHAT,
                json={"model": model, "messages": HI, "stream": True},
                headers={"authorization": f"Bearer {key}"},
            )
            assert response.status == 200
            for _ in range(4):
                await response.content.readline()
            response.close()

    asyncio.run(hang_up())
    hung_up = time.monotonic()
    assert fake.last.disconnected.wait(1.0), "the upstream never saw the client leave"
    assert time.monotonic() - hung_up < 1.0
    record = wait_records(tmp_path / "logs", 1)[0]
    assert (record["complete"], record["error"], record["user"]) == (
        False,
        "client disconnected",
        "wes",
    )
    assert not [line for line in loguru_lines if "after-hook" in line or "Traceback" in line]

    reply = sdk(proxy.url, key).chat.completions.create(model=model, messages=HI)
    assert reply.choices[0].message.content and reply.usage is not None
    usage = admin(proxy.url).get("/admin/usage", params={"user": "wes"}).json()["totals"]["wes"]
    assert usage["requests"] == 2
    # what came before the hang-up counts too
    left = prompt_tokens({"model": model, "messages": HI, "stream": True})
    left += reply_tokens(record["reply"])
    assert usage["total_tokens"] == reply.usage.total_tokens + left


def secrets_mix(url: str, upstream: FakeUpstream, providers: FakeUpstream) -> list[httpx.Response]:
    """Every kind of request, good and bad; all the responses."""
    token = {"authorization": f"Bearer {TOKEN}"}
    made = httpx.post(
        url + "/admin/users",
        json={"name": "xia", "rpm": 8, "models": ["gpt-*", "claude-*", "gemini-*"]},
        headers=token,
    )
    assert made.status_code == 201
    key = made.json()["key"]  # the one answer that shows it
    answers: list[httpx.Response] = []
    for who in ("fk-test", key):
        for model in ("gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.0-flash", "gpt-3.5-turbo"):
            answers.append(post(url, who, model=model))
            with httpx.stream(
                "POST",
                url + CHAT,
                json={"model": model, "messages": HI, "stream": True},
                headers={"authorization": f"Bearer {who}"},
            ) as streamed:
                streamed.read()
            answers.append(streamed)
    answers.append(post(url, "fk-test", model="gpt-4o-mini,claude-sonnet-4-5"))
    answers.append(post(url, key, model="gpt-4o-mini,o3"))  # o3 is not allowed: 403
    answers.append(post(url, "aifd-not-a-real-key-0123456789"))
    answers.append(httpx.get(url + "/v1/models", headers={"authorization": f"Bearer {key}"}))
    answers.append(httpx.get(url + "/admin/usage", headers=token))
    answers.append(httpx.get(url + "/admin/users", headers={"authorization": "Bearer nope"}))
    upstream.handler = providers.handler = _unauthorized
    answers.append(post(url, "fk-test"))
    answers.append(post(url, "fk-test", model="claude-sonnet-4-5"))
    answers.append(post(url, key, model="gemini-2.0-flash"))
    return [*answers, httpx.Response(200, content=key.encode())]


async def _unauthorized(request: web.Request, rec: Recorded) -> web.StreamResponse:
    # A real upstream answers 401 and names the problem, not the key
    return web.Response(
        status=401,
        body=orjson.dumps({"error": {"message": "Incorrect API key provided"}}),
        content_type="application/json",
    )


def assert_secret_free(texts: list[str], secrets: tuple[str, ...]) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"{secret!r} leaked in {text[:300]!r}"


def test_no_secret_leaks_in_process(
    upstream: FakeUpstream,
    providers: FakeUpstream,
    proxy_factory: Factory,
    tmp_path: Path,
    loguru_lines: list[str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    printed: list[str] = []
    proxy = proxy_factory(**all_features(upstream, providers, tmp_path, RETRIES=1))
    *answers, issued = secrets_mix(proxy.url, upstream, providers)
    key = issued.text
    statuses = [a.status_code for a in answers]
    assert {200, 401, 403, 429} <= set(statuses)
    assert len(wait_records(tmp_path / "logs", 17)) >= 17
    lines = access_lines(capfd, printed, len(answers) - 4)
    assert len(lines) >= len(answers) - 4
    texts = [*printed, *loguru_lines, all_log_bytes(tmp_path / "logs").decode()]
    texts += [str(a.headers) + a.text for a in answers]
    assert_secret_free(texts, (*SECRETS, key, key[-16:]))
    assert any(r["user"] == "xia" for r in read_records(tmp_path / "logs"))


def test_no_secret_leaks_from_aifd_run(
    upstream: FakeUpstream, providers: FakeUpstream, tmp_path: Path
) -> None:
    settings = all_features(upstream, providers, tmp_path, RETRIES=1)
    with aifd_instance({k: str(v) for k, v in settings.items()}, tmp_path) as (url, proc):
        *answers, issued = secrets_mix(url, upstream, providers)
        assert len(wait_records(tmp_path / "logs", 17)) >= 17
    assert proc.stdout is not None
    output = proc.stdout.read()
    assert "ACCESS" in output and "-> 429" in output
    key = issued.text
    texts = [output, all_log_bytes(tmp_path / "logs").decode()]
    texts += [str(a.headers) + a.text for a in answers]
    assert_secret_free(texts, (*SECRETS, key, key[-16:]))


def test_sigterm_mid_stream_finishes_it_then_writes_its_record_and_usage(
    upstream: FakeUpstream, providers: FakeUpstream, tmp_path: Path
) -> None:
    upstream.handler = providers.handler = cut_streams(cut_after=1000, delay=0.05)  # ~2 s
    settings = all_features(upstream, providers, tmp_path, SHUTDOWN_GRACE=10)
    with aifd_instance({k: str(v) for k, v in settings.items()}, tmp_path) as (url, proc):
        token = {"authorization": f"Bearer {TOKEN}"}
        key = httpx.post(url + "/admin/users", json={"name": "ola"}, headers=token).json()["key"]
        with httpx.stream(
            "POST",
            url + CHAT,
            json={"model": "gpt-4o-mini", "messages": HI, "stream": True},
            headers={"authorization": f"Bearer {key}"},
            timeout=20,
        ) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")
            proc.terminate()
            rest = list(lines)
        assert proc.wait(15) == 0
    assert "data: [DONE]" in rest
    record = wait_records(tmp_path / "logs", 1)[0]
    assert (record["complete"], record["user"]) == (True, "ola")
    with sqlite3.connect(tmp_path / "users.db") as db:
        rows = list(db.execute("SELECT * FROM usage"))
    assert len(rows) == 1 and "ola" in rows[0] and 1 in rows[0]
