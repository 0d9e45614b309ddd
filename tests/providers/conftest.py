from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.fakes import FakeUpstream, ProxyServer
from tests.providers.fakes import env


@pytest.fixture
def proxy(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> ProxyServer:
    return proxy_factory(**env(upstream, providers))
