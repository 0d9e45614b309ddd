"""The only network I/O to upstreams: one pool of connections per process.

The pool is `http1.py`'s lean HTTP/1.1 client, or an aiohttp session when PROXY is set
or UPSTREAM_CLIENT=aiohttp.

Every answer passes through the Redactor before anyone reads it, so no real key
an upstream echoes reaches a client, a translator or a log.

Three timeouts, none of them total (a stream may last as long as it keeps
talking): CONNECT_TIMEOUT to open a connection, FIRST_BYTE_TIMEOUT from sending
the request until the response headers, IDLE_TIMEOUT between body chunks. At most
UPSTREAM_POOL_SIZE connections are open at once; a request that finds none free
within POOL_TIMEOUT gets a 503 with Retry-After, never an endless wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import aiohttp
from aiohttp import hdrs
from loguru import logger
from multidict import CIMultiDict
from yarl import URL

from .deadlines import Deadlines
from .errors import ServiceUnavailable, UpstreamTimeout, UpstreamUnreachable
from .http1 import ConnectFailed, PoolExhausted
from .http1_pool import Http1Pool
from .redact import RedactedBody, RedactedResponse, Redactor, StreamMask
from .settings import Settings
from .types import Headers

# aiohttp adds these unless told not to; the client's own values (or none) must go upstream.
_SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
MIN_IDLE = 300.0  # seconds between chunks when neither IDLE_TIMEOUT nor a larger TIMEOUT says


class ExactRequest(aiohttp.ClientRequest):
    """aiohttp's request, minus the `Content-Length: 0` it adds to a body-less DELETE."""

    def update_body_from_data(self, body: Any, *args: Any, **kwargs: Any) -> None:
        had_length = hdrs.CONTENT_LENGTH in self.headers
        super().update_body_from_data(body, *args, **kwargs)
        if body is None and not had_length:
            self.headers.popall(hdrs.CONTENT_LENGTH, None)


def _empty_body(method: str) -> bytes | None:
    """An empty body as sent: `Content-Length: 0` where the method carries one, else none."""
    return b"" if method in _METHODS_WITH_BODY else None


class BoundedWaitConnector(aiohttp.TCPConnector):
    """aiohttp's connector, with a bound on the wait for a free connection when all
    `limit` are in use (aiohttp's own `connect` timeout would also cut connecting)."""

    def __init__(self, pool_timeout: float, **options: Any) -> None:
        super().__init__(**options)
        self.pool_timeout = pool_timeout

    async def _wait_for_available_connection(self, *args: Any, **kwargs: Any) -> None:
        try:
            async with asyncio.timeout(self.pool_timeout):
                await super()._wait_for_available_connection(*args, **kwargs)
        except TimeoutError:
            raise PoolExhausted from None


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
    url: URL  # built by Origin.url: never from a string the client supplied
    headers: Headers
    body: bytes
    route: str
    translate: ResponseTranslator | None = None
    compose: Callable[[Upstream], Awaitable[UpstreamResponse]] | None = None


class Upstream:
    """Owns the pooled session; `send` returns a response whose body is still unread."""

    def __init__(self, settings: Settings, redactor: Redactor | None = None) -> None:
        self._settings = settings
        self.redactor = redactor if redactor is not None else Redactor.for_settings(settings)
        self._session: aiohttp.ClientSession | None = None
        self._pool: Http1Pool | None = None
        timeouts = settings.resilience
        self.connect_timeout = timeouts.connect_timeout or settings.timeout
        self.first_byte_timeout = timeouts.first_byte_timeout
        self.idle_timeout = timeouts.idle_timeout or idle_default(settings.timeout)
        # The first byte's and the silences' deadlines (no timer per request).
        self.deadlines = Deadlines(min(self.first_byte_timeout or MIN_IDLE, self.idle_timeout))

    async def __aenter__(self) -> Upstream:
        await self.deadlines.__aenter__()
        settings = self._settings
        if settings.proxy is None and settings.upstream_client == "builtin":
            self._pool = Http1Pool(
                limit=settings.pool_size,
                pool_timeout=settings.pool_timeout,
                connect_timeout=self.connect_timeout,
            )
            return self
        connector = BoundedWaitConnector(
            settings.pool_timeout,
            limit=settings.pool_size,
            ttl_dns_cache=300,
            enable_cleanup_closed=True,
        )
        # Reads are bounded here (first byte) and in iter_body (idle), not by aiohttp's
        # sock_read, which cannot tell a model thinking from a stream stalling.
        timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=self.connect_timeout, sock_read=None
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            auto_decompress=False,
            trust_env=False,
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            request_class=ExactRequest,
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
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        await self.deadlines.__aexit__(exc_type, exc, tb)

    def body(
        self, response: UpstreamResponse, feed: Callable[[bytes], None] | None = None
    ) -> AsyncIterator[bytes]:
        """`response`'s body as it arrives, a stall past IDLE_TIMEOUT a TimeoutError."""
        return iter_body(response, feed, (self.deadlines, self.idle_timeout))

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Send `request`; raise UpstreamUnreachable or UpstreamTimeout on failure."""
        if request.compose is not None:
            return await request.compose(self)
        task = asyncio.current_task()
        assert task is not None
        deadlines = self.deadlines
        if self.first_byte_timeout is not None:
            deadlines.set(task, asyncio.get_running_loop().time() + self.first_byte_timeout)
        try:
            # Translating a non-streamed answer reads its body: that counts as the first byte.
            try:
                raw = await self._call(request)
                response: UpstreamResponse = (
                    RedactedResponse(raw, self.redactor) if self.redactor else raw
                )
                return await request.translate(response) if request.translate else response
            except asyncio.CancelledError:
                if deadlines.expired(task):
                    raise TimeoutError from None
                raise
            finally:
                deadlines.clear(task)
        except PoolExhausted:
            raise self.pool_exhausted(request.route) from None
        except aiohttp.ConnectionTimeoutError:
            logger.warning("upstream {} timed out connecting", request.route)
            raise UpstreamTimeout(
                f"could not connect to the upstream of route '{request.route}' within "
                f"{self.connect_timeout:g}s; check that it is up, or raise CONNECT_TIMEOUT"
            ) from None
        except TimeoutError:
            logger.warning("upstream {} sent no answer in time", request.route)
            raise UpstreamTimeout(
                f"the upstream of route '{request.route}' did not answer within "
                f"{self.first_byte_timeout:g}s; try again later or raise FIRST_BYTE_TIMEOUT"
            ) from None
        except aiohttp.ClientError as exc:
            why = (
                f"{type(exc).__name__}: {exc}"
                if isinstance(exc, ConnectFailed)
                else type(exc).__name__
            )
            logger.warning("upstream {} unreachable: {}", request.route, why)
            raise UpstreamUnreachable(
                f"could not reach the upstream of route '{request.route}' "
                f"({type(exc).__name__}); check its base URL and that it is up"
            ) from None

    async def _call(self, request: UpstreamRequest) -> UpstreamResponse:
        headers = request.headers
        if self.redactor:
            # A compressed body cannot be searched for keys: ask for it as it is.
            headers = [(n, v) for n, v in headers if n.lower() != b"accept-encoding"]
            headers.append((b"accept-encoding", b"identity"))
        body = request.body or _empty_body(request.method)
        if self._pool is not None:
            return await self._pool.request(request.method, request.url, headers, body)
        if self._session is None:
            raise RuntimeError("Upstream used outside its lifespan")
        return await self._session.request(
            request.method,
            request.url,
            headers=CIMultiDict((n.decode("latin-1"), v.decode("latin-1")) for n, v in headers),
            data=body,
            proxy=self._settings.proxy,
            allow_redirects=False,
        )

    def pool_exhausted(self, route: str) -> ServiceUnavailable:
        size = self._settings.pool_size
        logger.warning(
            "upstream {}: no free connection within POOL_TIMEOUT={:g}s (UPSTREAM_POOL_SIZE={})",
            route,
            self._settings.pool_timeout,
            size,
        )
        return ServiceUnavailable(
            f"the gateway has all its {size} upstream connections in use and none came free "
            f"within {self._settings.pool_timeout:g}s; retry shortly (its operator can raise "
            "UPSTREAM_POOL_SIZE)",
            code="upstream_pool_exhausted",
            headers={"retry-after": "1"},
        )


async def iter_body(
    response: UpstreamResponse,
    feed: Callable[[bytes], None] | None = None,
    idle: tuple[Deadlines, float] | None = None,
) -> AsyncIterator[bytes]:
    """The response body as it arrives, chunk by chunk (keys masked, if it is a
    RedactedResponse); `feed` sees each chunk first.

    With `idle` (the deadlines, and the seconds of silence allowed), raises TimeoutError
    when no chunk arrives for that long; the time the client takes to take a chunk does
    not count (a slow client is not a stalled upstream).
    """
    content = response.content
    mask = None
    if isinstance(content, RedactedBody):  # masked here, chunk by chunk
        mask = StreamMask(content.redactor)
        content = content.origin
    chunks = aiter(content.iter_any())
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    while True:
        if idle is not None:
            idle[0].set(task, loop.time() + idle[1])
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            break
        except asyncio.CancelledError:
            if idle is not None and idle[0].expired(task):
                raise TimeoutError(f"no data for {idle[1]:g}s") from None
            raise
        finally:
            if idle is not None:
                idle[0].clear(task)
        if mask is not None:
            chunk = mask.push(chunk)
            if not chunk:
                continue
        if feed is not None:
            feed(chunk)
        yield chunk
    if mask is not None and mask.pending:
        if feed is not None:
            feed(mask.pending)
        yield mask.pending


def idle_default(timeout: float) -> float:
    """The gap allowed between chunks when IDLE_TIMEOUT is unset: TIMEOUT, never below
    MIN_IDLE (openai-forward users set TIMEOUT=6 for connecting; models pause longer)."""
    return max(timeout, MIN_IDLE)


class Deadline:
    """`asyncio.timeout` for one await, at a third of its cost (the rate limits bound their
    storage calls with it).

    Raises TimeoutError from the `with` block when `seconds` (None: never) run out.
    """

    __slots__ = ("expired", "handle", "task")

    def __init__(self, seconds: float | None) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.expired = False
        self.handle = None if seconds is None else loop.call_at(loop.time() + seconds, self.fire)

    def fire(self) -> None:
        self.expired = True
        self.task.cancel()

    def __enter__(self) -> Deadline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.handle is not None:
            self.handle.cancel()
        if exc_type is asyncio.CancelledError and self.expired and not self.task.uncancel():
            raise TimeoutError from None
