"""upstream.py's wire: HTTP/1.1 over a pool of keep-alive connections, parsed by httptools.

Only `Upstream` (upstream.py) uses this, through `http1_pool.Http1Pool`; nothing else
opens connections to upstreams.
aiohttp's client spends about 320,000 instructions on a small request and its answer
(two thirds of a bare proxy's work, measured with callgrind); this spends a fraction,
since it does only what a gateway needs: send the bytes it is given, read the status,
the headers and the body as they come. aiohttp stays for an outbound `PROXY`.

A connection serves one request at a time and goes back to the pool as soon as its
answer has arrived whole (the body is buffered in the answer until read), or is closed
when the answer is abandoned early. The pool (`http1_pool.py`) bounds how many are in
use at once; a request that finds none free in time raises PoolExhausted.

Failures are aiohttp's exceptions, so that every caller catches one family:
`ConnectFailed` (could not connect), `ConnectionTimeoutError`, `ServerDisconnectedError`
(closed before an answer), `ClientPayloadError` (closed mid-body, or not HTTP). Any
status is an answer, never an exception.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Protocol, cast

import aiohttp
import httptools
from yarl import URL

from .types import Headers

HIGH_WATER = 1 << 18  # bytes of unread body before the socket stops being read
NO_BODY_STATUS = frozenset({204, 304})

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


class Pool(Protocol):
    """What a connection tells its pool (`http1_pool.Http1Pool`)."""

    def done(self, conn: Connection, reusable: bool) -> None: ...

    def forget(self, conn: Connection) -> None: ...


class Connection(asyncio.Protocol):
    """One keep-alive connection to an upstream, and the parser of its answers."""

    def __init__(self, pool: Pool, key: PoolKey) -> None:
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
    head = b"".join(lines)
    # Every line break is one of ours: a CR or LF inside the path or a header (never let
    # through by the server that parsed the client's request, but checked here, where a
    # request is written) would smuggle a header or a second request to the upstream.
    breaks = 3 + len(headers) + (body is not None)
    if head.count(b"\n") != breaks or head.count(b"\r") != breaks:
        raise ValueError("a line break in the request's path or headers; not sent upstream")
    return head
