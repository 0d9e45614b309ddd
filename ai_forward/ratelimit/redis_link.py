"""One pipelined connection to a plain Redis server, for the counters' two scripts.

redis-py spends more CPU on one call (connection pool, retry wrapper, command encoder,
observability hooks) than the Lua script spends in Redis. The counters need none of
that: they send EVALSHA and read one reply. `RedisLink` writes the commands of every
request on one connection (those queued in the same turn of the event loop go out in one
write) and reads the replies, in order, with hiredis. One timer watches the oldest call
(replies come in order): when it is older than `timeout`, the connection is dropped and
every waiting call fails, so a hung Redis costs a request at most that long.

Used for `redis://host:port/db` URLs; TLS, sockets, Sentinel and Cluster go through
redis-py (see `store.py`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis
import redis.exceptions

from .redis_counters import Script

WATCH_EVERY = 0.1  # seconds between looks at the oldest waiting call
KEPT_ARGUMENTS = 4096  # encoded arguments remembered (emptied when full)


def plain_url(url: str) -> bool:
    """Whether `RedisLink` can open `url`: redis://[user:password@]host[:port][/db]."""
    parts = urlsplit(url)
    path = parts.path.strip("/")
    return (
        parts.scheme == "redis"
        and not parts.query
        and bool(parts.hostname)
        and "," not in parts.netloc
        and (not path or path.isdigit())
    )


def pack(args: tuple[bytes | str | int, ...], kept: dict[Any, bytes] | None = None) -> bytes:
    """A command in RESP, the protocol's request form.

    `kept` remembers the encoding of each argument (a script's hash, a counter's key, an
    amount): a request's arguments are nearly all ones sent before. Arguments are bytes,
    str or int (never a bool or a float, which would share an int's entry).
    """
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        piece = kept.get(arg) if kept is not None else None
        if piece is None:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            piece = b"$%d\r\n%s\r\n" % (len(data), data)
            if kept is not None:
                if len(kept) >= KEPT_ARGUMENTS:
                    kept.clear()
                kept[arg] = piece
        out.append(piece)
    return b"".join(out)


class RedisLink:
    """`call(*args)` sends one command and returns its reply; `script(...)` runs a Lua script
    by its hash, loading it the first time. Connects when first called, and again after a
    failure."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.db = int(parts.path.strip("/") or 0)
        self.timeout = timeout
        self._pipe: _Pipe | None = None
        self._connecting: asyncio.Future[_Pipe] | None = None
        self._kept: dict[Any, bytes] = {}

    async def call(self, *args: bytes | str | int) -> Any:
        pipe = self._pipe
        if pipe is None or pipe.closed:
            pipe = await self._connect()
        return await pipe.send(pack(args, self._kept))

    async def script(self, script: Script, keys: list[str], args: list[str | int]) -> Any:
        """Run `script` by its hash, sending it whole when Redis does not have it."""
        try:
            return await self.call(b"EVALSHA", script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:  # a restarted or flushed Redis: load it again
            return await self.call(b"EVAL", script.source, len(keys), *keys, *args)

    async def ping(self) -> bool:
        return bool(await self.call(b"PING") == b"PONG")

    async def aclose(self) -> None:
        if self._pipe is not None:
            self._pipe.fail(redis.exceptions.ConnectionError("the rate limit storage closed"))
            self._pipe = None

    async def _connect(self) -> _Pipe:
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done():
                self._connecting = None

    async def _open(self) -> _Pipe:
        loop = asyncio.get_running_loop()
        pipe = _Pipe(loop, self.timeout)
        try:
            async with asyncio.timeout(self.timeout):
                await loop.create_connection(lambda: pipe, self.host, self.port)
                hello: list[asyncio.Future[Any]] = []
                if self.password is not None:
                    auth = (self.username, self.password) if self.username else (self.password,)
                    hello.append(pipe.send(pack((b"AUTH", *auth))))
                if self.db:
                    hello.append(pipe.send(pack((b"SELECT", self.db))))
                for reply in hello:
                    await reply
        except BaseException:
            pipe.fail(redis.exceptions.ConnectionError("the Redis connection failed to open"))
            raise
        self._pipe = pipe
        return pipe


class _Pipe(asyncio.Protocol):
    """The connection: commands go out as they come, replies are matched to them in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.outgoing: list[bytes] = []
        self.closed = False
        self._watch: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self.closed:
            raise redis.exceptions.ConnectionError("the rate limit storage connection is closed")
        future = self.loop.create_future()
        self.waiting.append((future, self.loop.time() + self.timeout))
        if not self.outgoing:
            self.loop.call_soon(self._flush)
        self.outgoing.append(command)
        if self._watch is None:
            self._watch = self.loop.call_later(WATCH_EVERY, self._look)
        return future

    def _flush(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.waiting
        while (reply := self.reader.gets()) is not False:
            if not waiting:
                self.fail(redis.exceptions.ConnectionError("an unexpected reply from Redis"))
                return
            future, _ = waiting.popleft()
            if future.done():  # its caller gave up (a client gone)
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(_error(str(reply)))
            else:
                future.set_result(reply)

    def _look(self) -> None:
        self._watch = None
        if not self.waiting or self.closed:
            return
        if self.waiting[0][1] <= self.loop.time():
            self.fail(TimeoutError(f"Redis did not answer within {self.timeout:g}s"))
            return
        self._watch = self.loop.call_later(WATCH_EVERY, self._look)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(redis.exceptions.ConnectionError(f"the Redis connection was lost ({exc})"))

    def fail(self, exc: Exception) -> None:
        """Close the connection; every waiting call raises `exc`."""
        self.closed = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()


def _error(message: str) -> redis.exceptions.RedisError:
    if message.startswith("NOSCRIPT"):
        return redis.exceptions.NoScriptError(message)
    if message.startswith(("WRONGPASS", "NOAUTH", "NOPERM")):
        return redis.exceptions.AuthenticationError(message)
    return redis.exceptions.ResponseError(message)
