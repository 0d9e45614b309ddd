"""Several models in one request: each model walks its own chain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.fakes import FakeUpstream, ProxyServer
from tests.fallbacks.fakes import OVERLOADED, failing, settings
from tests.providers.fakes import HI, client

ProxyFactory = Callable[..., ProxyServer]


def test_fan_out_falls_back_per_model_not_streamed(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    upstream.handler = failing(503, OVERLOADED)
    proxy = proxy_factory(**settings(upstream, providers))
    reply = client(proxy).chat.completions.create(model="gpt-4o,gemini-2.0-flash", messages=HI)
    choices: list[Any] = [c.model_dump() for c in reply.choices]
    assert [c["model"] for c in choices] == ["claude-3-5-sonnet-latest", "gemini-2.0-flash"]
    assert choices[0]["message"]["content"] == "Hi from Claude"
    assert choices[1]["message"]["content"] == "Hi from Gemini"
    assert [r.json()["model"] for r in upstream.requests] == ["gpt-4o"]
    claude = [r for r in providers.requests if r.path == "/v1/messages"]
    assert [r.json()["model"] for r in claude] == ["claude-3-5-sonnet-latest"]


def test_fan_out_falls_back_per_model_streamed(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    upstream.handler = failing(503, OVERLOADED)
    proxy = proxy_factory(**settings(upstream, providers))
    parts = list(
        client(proxy).chat.completions.create(
            model="gpt-4o,gemini-2.0-flash", messages=HI, stream=True
        )
    )
    by_index: dict[int, set[str]] = {}
    for part in parts:
        for choice in part.choices:
            by_index.setdefault(choice.index, set()).add(part.model)
    assert by_index == {0: {"claude-3-5-sonnet-latest"}, 1: {"gemini-2.0-flash"}}
    assert all(c.finish_reason != "error" for p in parts for c in p.choices)


def test_fan_out_model_without_usable_fallback_shows_its_error(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    upstream.handler = failing(503, OVERLOADED)
    proxy = proxy_factory(**settings(upstream, providers))
    reply = client(proxy).chat.completions.create(model="gpt-4.1,gemini-2.0-flash", messages=HI)
    first: Any = reply.choices[0].model_dump()
    assert first["finish_reason"] == "error" and first["model"] == "gpt-4.1"
    assert "overloaded" in first["error"]["message"]
    assert not any(r.path == "/v1/messages" for r in providers.requests)
