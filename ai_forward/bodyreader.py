"""The client's request body, read whole: bounded in size (MAX_BODY_SIZE) and time (BODY_TIMEOUT).

BODY_TIMEOUT bounds the whole body, not the gap between two of its chunks: a client that
sends one byte a second never leaves a long gap, so only a bound on the total frees the
connection it holds. It counts from the first wait for body bytes, which also covers a
client that sends its headers and then nothing.

No timer per request: a body being read is noted in a dict, and one sweeper task per
process cancels the reads that are past their deadline. The common request, whose body
came with its headers, costs a dict entry and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

from .errors import BodyTooLarge, RequestTimeout
from .types import Receive

# How often the sweeper looks at most; a read ends at most this long after its deadline.
SWEEP_EVERY = 1.0


class ClientDisconnected(Exception):
    """The client went away before the exchange ended."""


class BodyReader:
    """Reads request bodies; a lifespan resource, whose sweeper enforces BODY_TIMEOUT."""

    def __init__(self, max_size: int, timeout: float) -> None:
        self.max_size = max_size
        self.timeout = timeout
        self._deadlines: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BodyReader:
        self._sweeper = asyncio.create_task(self._sweep(), name="body-timeout-sweeper")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    async def read(self, receive: Receive) -> bytes:
        """The whole body; BodyTooLarge, RequestTimeout or ClientDisconnected otherwise."""
        task = asyncio.current_task()
        assert task is not None
        self._deadlines[task] = asyncio.get_running_loop().time() + self.timeout
        try:
            return await self._read(receive)
        except asyncio.CancelledError:
            if task in self._expired and not task.uncancel():
                raise RequestTimeout(
                    f"the request body did not arrive within BODY_TIMEOUT ({self.timeout:g}s); "
                    f"send it faster, or ask the gateway's operator to raise BODY_TIMEOUT",
                    headers={"connection": "close"},
                ) from None
            raise
        finally:
            del self._deadlines[task]
            self._expired.discard(task)

    async def _read(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk: bytes = message.get("body", b"")
            if not chunks and not message.get("more_body", False):
                if len(chunk) > self.max_size:
                    raise too_large(self.max_size)
                return chunk  # the usual case: the whole body in one message
            size += len(chunk)
            if size > self.max_size:
                raise too_large(self.max_size)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        every = min(SWEEP_EVERY, self.timeout / 4)
        while True:
            await asyncio.sleep(every)
            now = loop.time()
            for task, deadline in self._deadlines.items():
                if now >= deadline and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()


def too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(
        f"request body is larger than MAX_BODY_SIZE ({limit} bytes); send less or raise the limit"
    )
