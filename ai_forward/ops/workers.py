"""Every worker's figures in one scrape: each publishes its counts to a shared directory.

With `--workers N` a scrape reaches one worker, which must answer for all. `aifd run`
makes a temporary directory (and removes it when it exits) and names it in
METRICS_DIR_ENV; each worker writes its counts there as `<pid>.json` once a second,
in a thread, and once more on the way out. The scraped worker adds its own live
counts to the others' files. Counters of a worker that has exited still count;
its gauges (in flight, queue depth) no longer do.

prometheus-client's own multiprocess mode was measured at about 50 µs per request
(a locked mmap write per value); this costs a dict update per value on the request
path and one small file write per second.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
from loguru import logger

from ..tasks import stop
from .tally import Capture, Tally, snapshot

METRICS_DIR_ENV = "AIFD_METRICS_DIR"
PUBLISH_EVERY = 1.0


class WorkerFigures:
    """Publishes this worker's counts (a lifespan resource) and gathers everyone's."""

    def __init__(self, tally: Tally, directory: Path | None) -> None:
        self.tally = tally
        self.directory = directory
        self.pid = os.getpid()
        self._task: asyncio.Task[None] | None = None
        self._warned = False

    async def __aenter__(self) -> WorkerFigures:
        self.pid = os.getpid()
        if self.directory is not None:
            self._task = asyncio.create_task(self._publish_often())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            await stop(self._task)
            self._task = None
            last = self.tally.capture()
            last.gauges.clear()  # an exited worker has nothing in flight
            await asyncio.to_thread(self._write, last)

    async def _publish_often(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_EVERY)
            await asyncio.to_thread(self._write, self.tally.capture())

    def _write(self, capture: Capture) -> None:
        """Write atomically; a broken directory costs a warning, never a request."""
        assert self.directory is not None
        path = self.directory / f"{self.pid}.json"
        temporary = path.with_suffix(".tmp")
        try:
            temporary.write_bytes(orjson.dumps(snapshot(capture)))
            temporary.replace(path)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                logger.warning(
                    "metrics: cannot write to {} ({}); /metrics shows this worker's "
                    "figures only when it is the one scraped",
                    self.directory,
                    exc.strerror or exc,
                )

    def gather(self) -> Callable[[], list[dict[str, Any]]]:
        """This worker's live counts, then every other worker's last published ones.

        The counts are copied now, on the event loop; what is returned formats them and
        reads the other workers' files, to be called in a thread.
        """
        mine = self.tally.capture()
        return lambda: [snapshot(mine), *self._read_others()]

    def _read_others(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        if self.directory is None:
            return found
        try:
            paths = sorted(self.directory.glob("*.json"))
        except OSError:
            return found
        for path in paths:
            if path.stem == str(self.pid):
                continue
            try:
                snapshot = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue
            if not (path.stem.isdigit() and alive(int(path.stem))):
                snapshot["gauges"] = {}
            found.append(snapshot)
        return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
