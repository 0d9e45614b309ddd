"""The chat-log writer: a bounded queue drained by one thread into JSON Lines files.

Requests only ever call `submit`, which never blocks: when the queue is full the
record is dropped and counted. Submitting is one append to a deque, which wakes
nobody: the thread looks at the queue every LINGER seconds (sooner once BATCH
records wait), so a busy event loop never waits on the GIL for a thread woken per
record. The thread serialises records and writes whole
lines with one `write` per batch to an unbuffered file, so a `kill -9` loses at
most what was still queued (well under a second) and leaves, at worst, one
truncated last line. Each process writes its own files (the pid is in the
name), so workers never interleave. Leaving the lifespan writes everything
queued before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, NamedTuple

import orjson
from loguru import logger

from ..redact import Redactor
from .reassemble import add_reply, reassemble
from .settings import ChatLogSettings

WARN_EVERY = 10.0
CLEAN_EVERY = 3600.0
BATCH = 512  # records written at once at most; as many waiting wake the thread early
LINGER = 0.05  # seconds between the thread's looks at the queue
# Another worker may be writing a recently modified file: never delete those.
ACTIVE_GRACE = 120.0
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class Entry(NamedTuple):
    """One record to write, and the secrets that must not appear in it."""

    route: str
    record: dict[str, Any]
    secrets: tuple[str, ...] = ()
    stream: bytes | None = None  # a streamed reply as it came, reassembled when written


class ChatLogWriter:
    """A lifespan resource: `async with writer:` starts the thread, leaving drains it."""

    def __init__(self, settings: ChatLogSettings, redactor: Redactor | None = None) -> None:
        self.settings = settings
        self.redactor = redactor if redactor is not None else Redactor(())
        self._queue: deque[Entry] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._files: dict[str, RouteFile] = {}
        self._last_warning = 0.0
        self._last_clean = 0.0
        self.dropped = 0
        self.failed = 0
        self.last_error: str | None = None  # why the last write failed, until one succeeds
        self.written = 0

    def submit(
        self,
        route: str,
        record: dict[str, Any],
        secrets: tuple[str, ...] = (),
        stream: bytes | None = None,
    ) -> None:
        """Queue `record` for writing; never blocks (drops and counts when full)."""
        pending = len(self._queue)
        if pending < self.settings.queue_size:
            self._queue.append(Entry(route, record, secrets, stream))
            if pending + 1 == BATCH:
                self._wake.set()
        else:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_warning > WARN_EVERY:
                self._last_warning = now
                logger.warning(
                    "chat log: queue full ({} records), {} records dropped so far; the disk "
                    "is slower than the traffic: raise LOG_QUEUE_SIZE or use a faster disk",
                    self.settings.queue_size,
                    self.dropped,
                )

    async def __aenter__(self) -> ChatLogWriter:
        await asyncio.to_thread(self._prepare)
        self._thread = threading.Thread(target=self._run, name="aifd-chat-log", daemon=True)
        self._thread.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread is None:
            return
        # The thread writes every queued record before it ends.
        self._stopping = True
        self._wake.set()
        await asyncio.to_thread(self._thread.join)
        self._thread = None
        if self.dropped or self.failed:
            logger.warning(
                "chat log: {} records written, {} dropped (queue full), {} lost (write errors)",
                self.written,
                self.dropped,
                self.failed,
            )

    @property
    def depth(self) -> int:
        """Records waiting for the writer."""
        return len(self._queue)

    async def health(self) -> str | None:
        """None while the writer thread runs and its last write worked, else why not."""
        if self._thread is None or not self._thread.is_alive():
            return "the chat-log writer thread is not running"
        return self.last_error

    def _prepare(self) -> None:
        directory = self.settings.chat_dir
        try:
            directory.mkdir(parents=True, exist_ok=True)
            probe = directory / f".probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise RuntimeError(
                f"LOG_DIR={str(self.settings.directory)!r}: cannot write chat logs to "
                f"{directory} ({exc.strerror or exc}); "
                f"fix its permissions or set LOG_DIR to another folder"
            ) from None
        self._clean()

    def _run(self) -> None:
        while True:
            stopping = self._stopping  # read before draining: nothing queued before is missed
            while self._queue:
                batch: list[Entry] = []
                with contextlib.suppress(IndexError):
                    while len(batch) < BATCH:
                        batch.append(self._queue.popleft())
                try:
                    self._write(batch)
                except Exception:  # the thread must outlive any bug, or shutdown would wait
                    self.failed += len(batch)
                    logger.exception("chat log: writing a batch failed")
            if stopping:
                break
            try:
                if time.monotonic() - self._last_clean > CLEAN_EVERY:
                    self._clean()
            except Exception:
                logger.exception("chat log: removing old files failed")
            self._wake.wait(LINGER)
            self._wake.clear()
        for handle in self._files.values():
            handle.close()
        self._files.clear()

    def _write(self, batch: list[Entry]) -> None:
        lines: dict[str, list[bytes]] = {}
        for entry in batch:
            try:
                line = encode(entry, self.redactor)
            except (TypeError, ValueError) as exc:
                self.failed += 1
                logger.error("chat log: a record could not be encoded ({}); skipped", exc)
                continue
            lines.setdefault(entry.route, []).append(line)
        for route, route_lines in lines.items():
            handle = self._files.get(route)
            if handle is None:
                handle = self._files[route] = RouteFile(self.settings, route)
            try:
                rotated = handle.write(route_lines)
                self.written += len(route_lines)
                self.last_error = None
            except OSError as exc:
                self.failed += len(route_lines)
                handle.close()
                self._warn_failure(exc)
                continue
            if rotated:
                self._clean()

    def _warn_failure(self, exc: OSError) -> None:
        self.last_error = f"cannot write to {self.settings.chat_dir} ({exc.strerror or exc})"
        now = time.monotonic()
        if now - self._last_warning > WARN_EVERY:
            self._last_warning = now
            logger.error(
                "chat log: cannot write to {} ({}); {} records lost so far",
                self.settings.chat_dir,
                exc.strerror or exc,
                self.failed,
            )

    def _clean(self) -> None:
        self._last_clean = time.monotonic()
        with contextlib.suppress(OSError):
            remove_expired(self.settings, {h.path for h in self._files.values() if h.path})


class RouteFile:
    """The current file of one route in this process; rotates by size and by day."""

    def __init__(self, settings: ChatLogSettings, route: str) -> None:
        self.settings = settings
        self.directory = settings.chat_dir / (_SAFE_NAME.sub("_", route).strip("._") or "route")
        self.path: Path | None = None
        self._file: BinaryIO | None = None
        self._size = 0
        self._day = ""
        self._serial = 1

    def write(self, lines: list[bytes]) -> bool:
        """Append whole lines, one `write` per file; True if a file was started."""
        rotated = False
        pending: list[bytes] = []
        pending_size = 0
        day = today() if self.settings.rotate_daily else ""  # once a batch, not a line
        for line in lines:
            if self._file is None or self._due(pending_size, len(line), day):
                self._flush(pending)
                pending, pending_size = [], 0
                self._open()
                rotated = True
            pending.append(line)
            pending_size += len(line)
        self._flush(pending)
        return rotated

    def _due(self, pending: int, incoming: int, day: str) -> bool:
        if day and day != self._day:
            return True
        used = self._size + pending
        limit = self.settings.rotate_size
        return bool(limit) and used > 0 and used + incoming > limit

    def _flush(self, lines: list[bytes]) -> None:
        if lines and self._file is not None:
            data = b"".join(lines)
            self._file.write(data)
            self._size += len(data)

    def _open(self) -> None:
        self.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%dT%H%M%S")
        base = f"chat-{stamp}-p{os.getpid()}"
        path = self.directory / f"{base}-{self._serial:03d}.jsonl"
        while path.exists():  # names sort in the order the files were started
            self._serial += 1
            path = self.directory / f"{base}-{self._serial:03d}.jsonl"
        self._serial += 1
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115  (kept open across batches)
        self.path = path
        self._size = 0
        self._day = now.strftime("%Y-%m-%d")

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def encode(entry: Entry, redactor: Redactor | None = None) -> bytes:
    """One JSON line, with any secret replaced (a key pasted into a message included).

    `redactor` masks every real key of the gateway, wherever the record holds it
    (a reply from any provider or host, an error message); `entry.secrets` are the
    keys of this exchange (the client's own among them).
    """
    record = entry.record
    if entry.stream is not None:
        record = add_reply(record, reassemble(entry.stream))
    line = orjson.dumps(record)
    if redactor is not None:
        line = redactor.redact(line)
    for secret in entry.secrets:
        encoded = secret.encode()
        if encoded in line:
            line = line.replace(encoded, b"[redacted]")
    return line + b"\n"


def remove_expired(settings: ChatLogSettings, keep: set[Path]) -> int:
    """Apply LOG_RETENTION to every route folder; returns how many files were deleted."""
    days, count = settings.retention_days, settings.retention_files
    if days is None and count is None:
        return 0
    now = time.time()
    removed = 0
    for folder in (p for p in settings.chat_dir.iterdir() if p.is_dir()):
        files = sorted(
            ((f.stat().st_mtime, f) for f in folder.glob("*.jsonl") if f not in keep),
            reverse=True,
        )
        if count is not None:
            # Files of this process that are open count among the newest ones kept.
            kept = count - sum(1 for path in keep if path.parent == folder)
            expired = [f for mtime, f in files[max(kept, 0) :] if now - mtime > ACTIVE_GRACE]
        else:
            assert days is not None
            expired = [f for mtime, f in files if now - mtime > days * 86400]
        for path in expired:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed
