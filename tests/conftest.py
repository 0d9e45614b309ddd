from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes import FakeUpstream, ProxyServer


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture
def proxy_factory() -> Iterator[Callable[..., ProxyServer]]:
    started: list[ProxyServer] = []

    def make(**env: Any) -> ProxyServer:
        proxy = ProxyServer({k: str(v) for k, v in env.items()}).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture
def proxy(upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer]) -> ProxyServer:
    """The gateway in front of `upstream`, with two real keys and one forward key."""
    return proxy_factory(
        OPENAI_BASE_URL=upstream.url, OPENAI_API_KEY="sk-real-1,sk-real-2", FORWARD_KEY="fk-test"
    )


from tests.integration_fakes import loguru_lines, providers  # noqa: E402, F401  (shared fixtures)
from tests.redis_server import (  # noqa: E402, F401  (shared fixtures)
    redis_cluster,
    redis_sentinel,
    redis_session,
    redis_url,
)
