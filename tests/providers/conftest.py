from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.fakes import FakeUpstream, ProxyServer
from tests.providers.fakes import env, providers_handler


@pytest.fixture
def providers() -> Iterator[FakeUpstream]:
    """One fake answering as Anthropic, Gemini and Azure OpenAI (by path)."""
    fake = FakeUpstream()
    fake.handler = providers_handler
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def proxy(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> ProxyServer:
    return proxy_factory(**env(upstream, providers))
