"""The client's request body, read whole: bounded in size (MAX_BODY_SIZE) and time (BODY_TIMEOUT).

BODY_TIMEOUT bounds the whole body, not the gap between two of its chunks: a client that
sends one byte a second never leaves a long gap, so only a bound on the total frees the
connection it holds. It counts from the first wait for body bytes, which also covers a
client that sends its headers and then nothing.

No timer per request: a body being read is noted in `Deadlines` (see deadlines.py),
whose one sweeper task cancels the reads past their deadline. The common request, whose
body came with its headers, costs a dict entry and nothing else.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from .deadlines import Deadlines
from .errors import BodyTooLarge, RequestTimeout
from .types import Receive


class ClientDisconnected(Exception):
    """The client went away before the exchange ended."""


class BodyReader:
    """Reads request bodies; a lifespan resource, whose sweeper enforces BODY_TIMEOUT."""

    def __init__(self, max_size: int, timeout: float) -> None:
        self.max_size = max_size
        self.timeout = timeout
        self.deadlines = Deadlines(timeout)

    async def __aenter__(self) -> BodyReader:
        await self.deadlines.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.deadlines.__aexit__(exc_type, exc, tb)

    async def read(self, receive: Receive) -> bytes:
        """The whole body; BodyTooLarge, RequestTimeout or ClientDisconnected otherwise."""
        task = asyncio.current_task()
        assert task is not None
        deadlines = self.deadlines
        deadlines.set(task, asyncio.get_running_loop().time() + self.timeout)
        try:
            return await self._read(receive)
        except asyncio.CancelledError:
            if deadlines.expired(task):
                raise RequestTimeout(
                    f"the request body did not arrive within BODY_TIMEOUT ({self.timeout:g}s); "
                    f"send it faster, or ask the gateway's operator to raise BODY_TIMEOUT",
                    headers={"connection": "close"},
                ) from None
            raise
        finally:
            deadlines.clear(task)

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


def too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(
        f"request body is larger than MAX_BODY_SIZE ({limit} bytes); send less or raise the limit"
    )
