"""upstream.py's wire: HTTP/1.1 over a pool of keep-alive connections, parsed by httptools.

Only `Upstream` (upstream.py) uses this; nothing else opens connections to upstreams.
aiohttp's client spends about 320,000 instructions on a small request and its answer
(two thirds of a bare proxy's work, measured with callgrind); this spends a fraction,
since it does only what a gateway needs: send the bytes it is given, read the status,
the headers and the body as they come. aiohttp stays for an outbound `PROXY`.

A connection serves one request at a time and goes back to the pool as soon as its
answer has arrived whole (the body is buffered in the answer until read), or is closed
when the answer is abandoned early. At most `limit` requests hold a connection at once;
one that finds none free within `pool_timeout` raises PoolExhausted.

Failures are aiohttp's exceptions, so that every caller catches one family:
ClientConnectorError-like `ConnectFailed` (could not connect), `ConnectionTimeoutError`,
`ServerDisconnectedError` (closed before an answer), `ClientPayloadError` (closed
mid-body), `ClientResponseError`-free: any status is an answer.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, cast

import aiohttp
import httptools
from yarl import URL

from .types import Headers

KEEPALIVE = 15.0  # seconds an idle connection is kept (upstreams close theirs after 5 to 75)
HIGH_WATER = 1 << 18  # bytes of unread body before the socket stops being read
NO_BODY_STATUS = frozenset({204, 304})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

PoolKey = tuple[str, str, int]


class PoolExhausted(Exception):
    """No connection came free within the pool timeout."""


class ConnectFailed(aiohttp.ClientConnectionError):
    """The upstream's address could not be reached (refused, unroutable, DNS)."""


class Stale(Exception):
    """A reused connection was found closed before any of the answer came back."""


class Answer:
    """An upstream's answer: status and headers read, the body arriving in `iter_any`."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_conn",
        "_eof",
        "_error",
        "_headers",
        "_waiter",
        "raw_headers",
        "status",
    )

    def __init__(self, conn: Connection, status: int, raw_headers: list[tuple[bytes, bytes]]):
        self.status = status
        self.raw_headers = raw_headers
        self._conn: Connection | None = conn
        # The connection's own queue while it is attached (the parser appends to it).
        self._chunks: deque[bytes] = conn.chunks
        self._buffered = 0
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._headers: RawHeaders | None = None

    @property
    def headers(self) -> RawHeaders:
        """The headers by name, case-insensitively (what the relay looks up: a few)."""
        if self._headers is None:
            self._headers = RawHeaders(self.raw_headers)
        return self._headers

    @property
    def content(self) -> Answer:
        return self

    def iter_any(self) -> Answer:
        return self

    def __aiter__(self) -> Answer:
        return self

    async def __anext__(self) -> bytes:
        """Every byte that has arrived since the last call (waits for some)."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._eof:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunks = self._chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        conn = self._conn
        if conn is not None and self._buffered >= HIGH_WATER:
            conn.resume()
        self._buffered = 0
        return data

    def _end(self, error: BaseException | None = None) -> None:
        self._conn = None
        if error is not None:
            self._error = error
        else:
            self._eof = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def release(self) -> None:
        """Done with the answer: its connection goes back if it was read whole, else closes."""
        self.close()

    def close(self) -> None:
        conn = self._conn
        if conn is not None:
            self._conn = None
            conn.abandon()


class RawHeaders(Mapping[str, str]):
    """Read-only, case-insensitive access to headers as they came: each lookup scans them
    (an answer has a dozen; building a multidict of them costs more than the lookups)."""

    __slots__ = ("_raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw

    def __getitem__(self, name: str) -> str:
        wanted = name.lower().encode("latin-1")
        for key, value in self._raw:
            if len(key) == len(wanted) and key.lower() == wanted:
                return value.decode("latin-1")
        raise KeyError(name)

    def getall(self, name: str) -> list[str]:
        wanted = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self._raw if k.lower() == wanted]

    def __iter__(self) -> Iterator[str]:
        return (key.decode("latin-1") for key, _ in self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class Connection(asyncio.Protocol):
    """One keep-alive connection to an upstream, and the parser of its answers."""

    def __init__(self, pool: Http1Pool, key: PoolKey) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        # The parser takes `on_body` once, when made: body parts go straight into the queue
        # the answer reads (a C call per part, no Python frame); see `detach`.
        self.chunks: deque[bytes] = deque()
        self.on_body = self.chunks.append
        self.parser = httptools.HttpResponseParser(self)
        self.idle_since = 0.0
        self.received = False  # any byte of the current answer
        self.head: asyncio.Future[Answer] | None = None
        self.answer: Answer | None = None
        self.header_list: list[tuple[bytes, bytes]] = []
        self.framed = False  # a Content-Length or Transfer-Encoding came
        self.to_eof = False  # the body ends when the connection does
        self.no_body = False
        self.closed = False
        self.paused = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
            answer = self.answer
            if answer is not None and self.chunks:
                answer._buffered += len(data)
                if answer._buffered >= HIGH_WATER:
                    self.pause()
                answer._wake()
        except httptools.HttpParserUpgrade:
            self.fail(aiohttp.ClientPayloadError("the upstream asked to switch protocols"))
        except httptools.HttpParserError as exc:
            self.fail(aiohttp.ClientPayloadError(f"the upstream's answer is not HTTP/1.1: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.head is not None and not self.head.done():
            error: BaseException = (
                Stale() if not self.received else aiohttp.ServerDisconnectedError()
            )
            self.head.set_exception(error)
        elif self.answer is not None:
            answer, self.answer = self.answer, None
            self.detach(answer)
            if self.to_eof:
                answer._end()
            else:
                cut = aiohttp.ClientPayloadError("the upstream closed the connection mid-body")
                answer._end(cut)
            self.pool.done(self, reusable=False)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.header_list = []
        self.framed = False
        self.chunks.clear()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_list.append((name, value))
        if len(name) in (14, 17) and name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        if 100 <= status < 200:  # informational: the real answer follows
            return
        head = self.head
        if head is None or head.done():
            self.fail(aiohttp.ClientPayloadError("an answer nobody asked for"))
            return
        self.head = None
        self.to_eof = not self.framed and status not in NO_BODY_STATUS
        answer = self.answer = Answer(self, status, self.header_list)
        head.set_result(answer)
        if self.no_body:  # a HEAD's answer: no body follows, whatever its headers say
            self.to_eof = False
            self.finish(reusable=False)

    def on_message_complete(self) -> None:
        if self.answer is not None:
            self.finish(reusable=self.parser.should_keep_alive())

    def detach(self, answer: Answer) -> None:
        """Give `answer` the body parts it has not read, in a queue of its own: the
        connection's serves its next answer."""
        answer._chunks = self.chunks.copy()
        self.chunks.clear()

    def finish(self, reusable: bool) -> None:
        answer, self.answer = self.answer, None
        if answer is not None:
            self.detach(answer)
            answer._end()
        self.resume()
        self.pool.done(self, reusable)

    def fail(self, error: BaseException) -> None:
        if self.head is not None and not self.head.done():
            self.head.set_exception(error)
        self.close()
        if self.answer is not None:
            answer, self.answer = self.answer, None
            self.detach(answer)
            answer._end(error)
            self.pool.done(self, reusable=False)

    def abandon(self) -> None:
        """The answer's reader gave up before the body ended."""
        self.answer = None
        self.chunks.clear()
        self.close()
        self.pool.done(self, reusable=False)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    async def send(self, head: bytes, body: bytes | None, method: str) -> Answer:
        assert self.transport is not None
        waiter = self.head = asyncio.get_running_loop().create_future()
        self.received = False
        self.no_body = method == "HEAD"
        self.transport.write(head + body if body else head)
        answer: Answer = await waiter
        return answer


class Http1Pool:
    """Keep-alive connections to every upstream origin, at most `limit` in use at once."""

    def __init__(self, *, limit: int, pool_timeout: float, connect_timeout: float) -> None:
        self.limit = limit
        self.pool_timeout = pool_timeout
        self.connect_timeout = connect_timeout
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._idle: dict[PoolKey, list[Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._open: set[Connection] = set()

    async def request(self, method: str, url: URL, headers: Headers, body: bytes | None) -> Answer:
        """Send one request; the answer's body is read from the returned Answer."""
        host = url.raw_host or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        key = (url.scheme, host, port)
        head = request_head(method, url, headers, body)
        await self._acquire()
        conn: Connection | None = None
        try:
            conn = self._idle_connection(key)
            if conn is not None:
                try:
                    return await conn.send(head, body, method)
                except Stale:
                    # Closed while idle, or on reading this request: an idempotent request
                    # goes once more on a new connection; others are the retrier's to judge.
                    if method not in IDEMPOTENT:
                        raise aiohttp.ServerDisconnectedError() from None
            conn = await self._connect(key)
            try:
                return await conn.send(head, body, method)
            except Stale:
                raise aiohttp.ServerDisconnectedError() from None
        except BaseException:
            if conn is not None:
                conn.close()
                self.forget(conn)
            self._release()
            raise

    def done(self, conn: Connection, reusable: bool) -> None:
        """`conn`'s answer is over: keep it for the next request, or let it go."""
        if reusable and not conn.closed:
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(conn.key, []).append(conn)
        else:
            conn.close()
        self._release()

    def forget(self, conn: Connection) -> None:
        self._open.discard(conn)
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    def close(self) -> None:
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()

    def _idle_connection(self, key: PoolKey) -> Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE:
                return conn
            conn.close()
        return None

    async def _connect(self, key: PoolKey) -> Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        options: dict[str, Any] = {}
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            options = {"ssl": self._ssl, "server_hostname": host}
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: Connection(self, key), host.strip("[]"), port, **options
                )
        except TimeoutError:
            raise aiohttp.ConnectionTimeoutError(f"connecting to {host}:{port}") from None
        except OSError as exc:
            raise ConnectFailed(f"{host}:{port}: {exc.strerror or exc}") from None
        self._open.add(conn)
        return conn

    async def _acquire(self) -> None:
        if self.limit and self.in_use >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(self.pool_timeout):
                    await waiter
            except TimeoutError:
                raise PoolExhausted from None
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # it was handed a slot it will not use
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            return  # the slot of the one that woke it
        self.in_use += 1

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on, in_use unchanged
                return
        self.in_use -= 1


def request_head(method: str, url: URL, headers: Headers, body: bytes | None) -> bytes:
    """The request line and headers, as sent: Host and Content-Length are ours."""
    authority = url.host_port_subcomponent or ""
    lines = [method.encode(), b" ", (url.raw_path_qs or "/").encode("latin-1"), b" HTTP/1.1\r\n"]
    lines += (b"host: ", authority.encode("latin-1"), b"\r\n")
    if body is not None:
        lines += (b"content-length: ", str(len(body)).encode(), b"\r\n")
    for name, value in headers:
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)
