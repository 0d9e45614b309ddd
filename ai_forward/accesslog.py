"""The process's log writer: access lines and app log lines, in time order, off the loop.

One line per request is formatted on the loop (about a microsecond) and queued; app
log records (loguru, and uvicorn's through it, see `ops/logs.py`) join the same
queue, so both come out in the order they happened. A thread writes the queue in
batches, so a slow terminal or pipe never slows requests. Bounded: lines beyond
`max_pending` are dropped and counted. `LOG_FORMAT=json` makes every line one JSON
object.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from types import TracebackType
from typing import Any, TextIO

import orjson

from .exchange import Exchange
from .observe.fields import usage_counts


class AccessLog:
    def __init__(
        self,
        stream: TextIO | None = None,
        max_pending: int = 50_000,
        *,
        json: bool = False,
        access: bool = True,
    ) -> None:
        self._stream = stream
        self._pending: collections.deque[str] = collections.deque()
        self._max = max_pending
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._second = -1
        self._stamp = ""
        self.json = json
        self.access = access  # False: app log lines only (ACCESS_LOG=false)
        self.dropped = 0

    def write(self, message: str) -> None:
        """An access line of plain text."""
        now = time.time()
        if self.json:
            self._push(orjson.dumps({"time": iso_time(now), "level": "INFO", "message": message}))
        else:
            self._push_text(f"{self._time(now)} | ACCESS   | {message}\n")

    def exchange(self, ex: Exchange) -> None:
        """The one line of a finished request."""
        if not self.access:
            return
        now = time.time()
        if self.json:
            fields = access_fields(ex)
            self._push(orjson.dumps({"time": iso_time(now), "level": "INFO", **fields}))
        else:
            self._push_text(f"{self._time(now)} | ACCESS   | {describe(ex)}\n")

    def app_line(self, line: str) -> None:
        """A formatted app log line (with its newline), from any thread."""
        if self._thread is None:
            stream = self._stream or sys.stderr
            stream.write(line)
            stream.flush()
            return
        if len(self._pending) >= self._max:
            self.dropped += 1
            return
        self._pending.append(line)
        self._wake.set()

    def _time(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        return f"{self._stamp}.{int((now - second) * 1000):03d}"

    def _push(self, line: bytes) -> None:
        self._push_text(line.decode() + "\n")

    def _push_text(self, line: str) -> None:
        if len(self._pending) >= self._max:
            self.dropped += 1
            return
        self._pending.append(line)

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(0.2)
            self._wake.clear()
            self._drain()
        self._drain()

    def _drain(self) -> None:
        lines = []
        while self._pending:
            lines.append(self._pending.popleft())
        if lines:
            stream = self._stream or sys.stderr
            stream.write("".join(lines))
            stream.flush()

    async def __aenter__(self) -> AccessLog:
        self._thread = threading.Thread(target=self._run, name="aifd-log", daemon=True)
        self._thread.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        self._thread = None
        if self.dropped:
            (self._stream or sys.stderr).write(f"access log: {self.dropped} lines dropped\n")


def iso_time(now: float) -> str:
    millis = int((now - int(now)) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)) + f".{millis:03d}"


def access_fields(ex: Exchange) -> dict[str, Any]:
    """What the access line says about a request: no keys, no query string."""
    outcome = ex.outcome
    total = outcome.ended - ex.started
    upstream = outcome.upstream_seconds
    tokens_in, tokens_out = usage_counts(outcome.usage)
    return {
        "request_id": ex.request_id,
        "client": ex.client_ip,
        "method": ex.method,
        "path": ex.path,
        "status": outcome.status,
        "ms": round(total * 1000, 1),
        "route": ex.route.name,
        "model": ex.model_hint,
        "key": ex.key_kind.value,
        "attempts": outcome.attempts,
        "retried": outcome.retried,
        "upstream_ms": round(upstream * 1000, 1),
        "added_ms": round(max(total - upstream, 0.0) * 1000, 1),
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "error": outcome.error,
    }


def describe(ex: Exchange) -> str:
    """The access line as text: the fields of `access_fields`, formatted straight from the
    exchange (this runs for every request)."""
    outcome = ex.outcome
    total = outcome.ended - ex.started
    upstream = outcome.upstream_seconds
    added = total - upstream if total > upstream else 0.0
    line = (
        f"{ex.request_id} {ex.client_ip} {ex.method} {ex.path} -> {outcome.status} "
        f"{total * 1000:.0f}ms route={ex.route.name} model={ex.model_hint or '-'} "
        f"key={ex.key_kind.value} attempts={outcome.attempts}"
    )
    if outcome.attempts > 1:
        line += f" ({', '.join(outcome.retried)})"
    line += f" upstream={upstream * 1000:.0f}ms added={added * 1000:.1f}ms"
    if outcome.reply is not None:
        tokens_in, tokens_out = usage_counts(outcome.usage)
        if tokens_in is not None:
            line += f" tokens={tokens_in}/{tokens_out}"
    if outcome.error:
        line += f" ({outcome.error})"
    return line
