"""The only network I/O to upstreams: one pooled aiohttp session per process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType

import aiohttp
from loguru import logger
from yarl import URL

from .errors import UpstreamTimeout, UpstreamUnreachable
from .settings import Settings
from .types import Headers

# aiohttp adds these unless told not to; the client's own values (or none) must go upstream.
_SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """Everything needed to send one request upstream."""

    method: str
    url: str
    headers: Headers
    body: bytes
    route: str


class Upstream:
    """Owns the pooled session; `send` returns a response whose body is still unread."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Upstream:
        connector = aiohttp.TCPConnector(limit=1024, ttl_dns_cache=300, enable_cleanup_closed=True)
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self._settings.timeout, sock_read=self._settings.timeout
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            auto_decompress=False,
            trust_env=False,
            skip_auto_headers=_SKIP_AUTO_HEADERS,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, request: UpstreamRequest) -> aiohttp.ClientResponse:
        """Send `request`; raise UpstreamUnreachable or UpstreamTimeout on failure."""
        if self._session is None:
            raise RuntimeError("Upstream used outside its lifespan")
        headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in request.headers]
        try:
            return await self._session.request(
                request.method,
                URL(request.url, encoded=True),
                headers=headers,
                data=request.body or None,
                proxy=self._settings.proxy,
                allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            logger.warning("upstream {} timed out: {}", request.route, type(exc).__name__)
            raise UpstreamTimeout(
                f"the upstream of route '{request.route}' did not answer within "
                f"{self._settings.timeout:g}s; try again later or raise TIMEOUT"
            ) from None
        except aiohttp.ClientError as exc:
            logger.warning("upstream {} unreachable: {}", request.route, type(exc).__name__)
            raise UpstreamUnreachable(
                f"could not reach the upstream of route '{request.route}' "
                f"({type(exc).__name__}); check its base URL and that it is up"
            ) from None


async def iter_body(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The response body as it arrives, chunk by chunk."""
    async for chunk in response.content.iter_any():
        yield chunk
