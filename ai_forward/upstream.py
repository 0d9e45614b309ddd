"""The only network I/O to upstreams: one pooled aiohttp session per process."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import aiohttp
from loguru import logger
from yarl import URL

from .errors import UpstreamTimeout, UpstreamUnreachable
from .settings import Settings
from .types import Headers

# aiohttp adds these unless told not to; the client's own values (or none) must go upstream.
_SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


class BodyStream(Protocol):
    def iter_any(self) -> AsyncIterable[bytes]: ...


class UpstreamResponse(Protocol):
    """What the relay reads of an answer: an aiohttp response, or one translated from it."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def raw_headers(self) -> Sequence[tuple[bytes, bytes]]: ...
    @property
    def content(self) -> BodyStream: ...
    def release(self) -> Any: ...
    def close(self) -> None: ...


# Turns the upstream's answer into the one the client gets (e.g. another API's format).
ResponseTranslator = Callable[[UpstreamResponse], Awaitable[UpstreamResponse]]


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """Everything needed to send one request upstream.

    `translate`, when set, is applied to the answer before anyone reads it.
    `compose`, when set, replaces the single call: it makes its own calls
    through this Upstream (e.g. one per model) and returns the combined answer.
    """

    method: str
    url: str
    headers: Headers
    body: bytes
    route: str
    translate: ResponseTranslator | None = None
    compose: Callable[[Upstream], Awaitable[UpstreamResponse]] | None = None


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

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Send `request`; raise UpstreamUnreachable or UpstreamTimeout on failure."""
        if request.compose is not None:
            return await request.compose(self)
        if self._session is None:
            raise RuntimeError("Upstream used outside its lifespan")
        headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in request.headers]
        try:
            response = await self._session.request(
                request.method,
                URL(request.url, encoded=True),
                headers=headers,
                data=request.body or None,
                proxy=self._settings.proxy,
                allow_redirects=False,
            )
            return await request.translate(response) if request.translate else response
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


async def iter_body(response: UpstreamResponse) -> AsyncIterator[bytes]:
    """The response body as it arrives, chunk by chunk."""
    async for chunk in response.content.iter_any():
        yield chunk
