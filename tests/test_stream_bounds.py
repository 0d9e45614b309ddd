"""An upstream stream whose events never end (`data:` lines, no blank line) is cut with the
stream error event by every reader of streams, memory stays bounded, and the gateway
keeps serving."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from ai_forward.sse import MAX_EVENT_SIZE, event_data
from tests.fakes import FakeUpstream, ProxyServer, Recorded, chunk
from tests.processes import aifd_instance
from tests.providers.fakes import HI, providers_handler

SENT_MB = 200
LINE = b"data: " + b"x" * (64 * 1024 - 7) + b"\n"  # one 64 KiB line, never an event end
FIRST = {
    "/v1/messages": b'event: message_start\ndata: {"type": "message_start", "message": '
    b'{"id": "m1", "model": "claude-3-haiku", "usage": {"input_tokens": 3}}}\n\n',
    "/v1/chat/completions": b"data: " + orjson.dumps(chunk(role="assistant", content="")) + b"\n\n",
}


class EndlessEvent:
    """A handler that starts a valid stream, then sends SENT_MB of `data:` lines with no
    blank line; records how much of it the gateway took before it hung up."""

    def __init__(self) -> None:
        self.written: list[int] = []

    def most_taken(self) -> int:
        """The most any stream sent before the gateway hung up (waits for it to hang up)."""
        deadline = time.monotonic() + 10
        while not self.written and time.monotonic() < deadline:
            time.sleep(0.02)
        return max(self.written)

    async def __call__(self, request: web.Request, rec: Recorded) -> web.StreamResponse:
        first = FIRST.get(rec.path)
        if first is None or not rec.json().get("stream"):
            return await providers_handler(request, rec)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(first)
        written = 0
        try:
            while written < SENT_MB * 1024 * 1024:
                await response.write(LINE)
                written += len(LINE)
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self.written.append(written)
        return response


def stream_chat(url: str, model: str, key: str = "fk-test") -> list[dict[str, Any]]:
    """The data of every event of a streamed chat completion, read over a raw socket."""
    body = {"model": model, "messages": HI, "stream": True}
    headers = {"authorization": f"Bearer {key}"}
    events: list[dict[str, Any]] = []
    with httpx.stream(
        "POST", url + "/v1/chat/completions", json=body, headers=headers, timeout=60
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):  # not the endless line, if it came through
                events.append(orjson.loads(line[6:]))
    return events


def assert_cut_with_error_event(events: list[dict[str, Any]]) -> None:
    assert events, "no event reached the client"
    error = events[-1].get("error") or events[-1]["choices"][0].get("error")
    assert error["code"] == "stream_broken", events[-1]
    assert "larger than" in error["message"]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def test_translated_stream_without_event_ends_is_cut_and_memory_stays_bounded(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    endless = EndlessEvent()
    upstream.handler = endless
    env = {
        "OPENAI_BASE_URL": upstream.url,
        "OPENAI_API_KEY": "sk-real",
        "FORWARD_KEY": "fk-test",
        "ANTHROPIC_BASE_URL": upstream.url,
        "ANTHROPIC_API_KEY": "sk-ant",
        "MODEL_ROUTES": "claude-*=anthropic",
        "TPM_LIMIT": "100000000/minute",  # the usage observer and the usage-chunk filter
    }
    with aifd_instance(env, tmp_path) as (url, proc):
        assert stream_chat(url, "gpt-4o-mini")  # warmed up: a normal stream works
        before = peak_rss_mb(proc.pid)
        cut = [stream_chat(url, model) for model in ("claude-3-haiku", "gpt-4o-mini")]
        grown = peak_rss_mb(proc.pid) - before
        assert grown < 4 * MAX_EVENT_SIZE / 2**20, f"peak RSS grew by {grown:.0f} MB"
        for events in cut:
            assert_cut_with_error_event(events)
        assert endless.most_taken() < SENT_MB * 1024 * 1024 / 2  # it stopped reading early
        reply = httpx.post(
            url + "/v1/chat/completions",
            json={"model": "claude-3-haiku", "messages": HI},
            headers={"authorization": "Bearer fk-test"},
            timeout=10,
        )
        assert reply.status_code == 200 and reply.json()["object"] == "chat.completion"


@pytest.mark.parametrize(
    ("settings", "model"),
    [
        ({"TOKEN_RATE_LIMIT": "100000000/second"}, "gpt-4o-mini"),  # pacing
        ({"LOG_CHAT": "true"}, "gpt-4o-mini"),  # chat log reassembly
        ({"LOG_CHAT": "true"}, "claude-3-haiku"),
        ({}, "gpt-4o-mini,claude-3-haiku"),  # fan-out
    ],
)
def test_every_stream_reader_cuts_an_event_that_never_ends(
    upstream: FakeUpstream,
    proxy_factory: Callable[..., ProxyServer],
    tmp_path: Path,
    settings: dict[str, str],
    model: str,
) -> None:
    endless = EndlessEvent()
    upstream.handler = endless
    gateway = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real",
        FORWARD_KEY="fk-test",
        ANTHROPIC_BASE_URL=upstream.url,
        ANTHROPIC_API_KEY="sk-ant",
        MODEL_ROUTES="claude-*=anthropic",
        LOG_DIR=str(tmp_path / "logs"),
        **settings,
    )
    events = stream_chat(gateway.url, model)
    if "," in model:  # each model's stream ends on its own; the other one's text still came
        errors = [c for e in events for c in e["choices"] if c.get("error")]
        assert len(errors) == 2 and all(c["error"]["code"] == "stream_broken" for c in errors)
    else:
        assert_cut_with_error_event(events)
    assert endless.most_taken() < SENT_MB * 1024 * 1024 / 2
    upstream.handler = providers_handler
    assert stream_chat(gateway.url, "claude-3-haiku")[0]["object"] == "chat.completion.chunk"


def test_event_data_joins_data_lines_whatever_the_line_endings() -> None:
    assert event_data(b'event: x\r\ndata: {"a":\r\ndata:1}\r\n\r\n') == b'{"a":\n1}'
    assert event_data(b": comment\n\n") == b""
