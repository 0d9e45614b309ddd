"""Deadlines of tasks, enforced by one sweeper task instead of a timer per request.

A task notes when the step it is waiting on must be over (`set`), and forgets it once the
step is (`clear`). The sweeper wakes every `every` seconds and cancels the tasks past their
deadline, marking them expired. The task, catching the CancelledError in that step, asks
`expired(task)`, which withdraws that cancellation and tells a deadline from any other
cancellation (a disconnect, a shutdown). A deadline fires at most `every` seconds late.

A timer per request costs a timer handle made, armed and cancelled on the event loop for
every request (three per request: the body, the upstream's first byte, its silences); a
dict entry costs next to nothing, and most requests end long before any deadline.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from .tasks import stop

# How often the sweeper looks at most; shorter when a deadline is short.
SWEEP_EVERY = 1.0


class Deadlines:
    """The deadlines of tasks; a lifespan resource (its sweeper runs while entered)."""

    def __init__(self, shortest: float) -> None:
        """`shortest`: the shortest time any deadline allows; it sets how often to look."""
        self.every = min(SWEEP_EVERY, shortest / 4)
        self._at: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    def set(self, task: asyncio.Task[Any], at: float) -> None:
        """`task`'s current step must be over at `at` (the loop's clock)."""
        self._at[task] = at

    def clear(self, task: asyncio.Task[Any]) -> None:
        self._at.pop(task, None)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether the CancelledError `task` caught is its deadline's, and no other
        cancellation is pending; the deadline's cancellation is withdrawn either way."""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        return not task.uncancel()

    async def __aenter__(self) -> Deadlines:
        self._sweeper = asyncio.create_task(self._sweep(), name="deadline-sweeper")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await stop(self._sweeper)
        self._sweeper = None

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.every)
            now = loop.time()
            late = [task for task, at in self._at.items() if now >= at]
            for task in late:
                del self._at[task]
                if task not in self._expired and task.cancel():
                    self._expired.add(task)
