"""The hooks after the provider hook (limits, chat log) see OpenAI's format both ways."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ai_forward.app import Gateway
from ai_forward.chatlog.reassemble import reassemble
from ai_forward.exchange import Exchange
from ai_forward.observe.stream_usage import ask_for_usage
from tests.fakes import FakeUpstream, ProxyServer
from tests.providers.fakes import HI, client, env


class UsageHook:
    """Stands in for the limits and chat-log hooks: asks for usage, keeps what it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, Any, Any]] = []

    async def before(self, ex: Exchange) -> None:
        ask_for_usage(ex)
        ex.observe = True  # the whole reply, as the chat log asks for it

    async def after(self, ex: Exchange) -> None:
        # A stream read whole comes as its bytes, for the chat log's writer to reassemble.
        stream = ex.outcome.stream
        reply = ex.outcome.reply if stream is None else reassemble(stream)
        self.seen.append((ex.json(), ex.outcome.usage, reply))


@pytest.fixture
def hooked(
    upstream: FakeUpstream, providers: FakeUpstream
) -> Iterator[tuple[ProxyServer, UsageHook]]:
    proxy = ProxyServer({k: str(v) for k, v in env(upstream, providers).items()})
    app: Any = proxy.server.config.app
    gateway: Gateway = getattr(app, "app", app)
    hook = UsageHook()
    gateway.forwarder.hooks = (*gateway.forwarder.hooks, hook)
    proxy.start()
    yield proxy, hook
    proxy.stop()


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "gemini-2.0-flash"])
def test_later_hooks_get_openai_usage_and_reply_from_a_translated_stream(
    hooked: tuple[ProxyServer, UsageHook], model: str
) -> None:
    proxy, hook = hooked
    chunks = list(client(proxy).chat.completions.create(model=model, messages=HI, stream=True))
    assert all(c.usage is None for c in chunks)  # the client did not ask for it
    body, usage, reply = hook.seen[-1]
    assert body["model"] == model and "messages" in body
    assert usage["total_tokens"] > 0
    assert reply["choices"][0]["message"]["content"]


def test_later_hooks_get_summed_usage_of_a_fan_out(hooked: tuple[ProxyServer, UsageHook]) -> None:
    proxy, hook = hooked
    reply = client(proxy).chat.completions.create(
        model="claude-sonnet-4-5,gemini-2.0-flash", messages=HI
    )
    _, usage, seen = hook.seen[-1]
    assert usage == {"prompt_tokens": 17, "completion_tokens": 7, "total_tokens": 24}
    assert reply.usage is not None and reply.usage.total_tokens == 24
    assert len(seen["choices"]) == 2
    chunks = list(
        client(proxy).chat.completions.create(
            model="claude-sonnet-4-5,gemini-2.0-flash", messages=HI, stream=True
        )
    )
    assert all(c.usage is None for c in chunks)
    _, usage, seen = hook.seen[-1]
    assert usage["total_tokens"] == 661 + 14
    assert [c["index"] for c in seen["choices"]] == [0, 1]
