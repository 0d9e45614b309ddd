"""Every limit of one request, counted in one atomic operation.

A request brings its charges (one per limit that applies to it); `take` admits it only if
every charge fits, counts them all, and returns the numbers the `x-ratelimit-*` headers
need, in one step. A request refused by any limit costs nothing on any of them.
`settle` corrects token charges once the reply ends, again in one step.

Strategies (RATE_LIMIT_STRATEGY, for request limits; token limits are always fixed
windows, since a reservation is settled later by a refund or an extra charge):

- fixed-window: a counter that expires one window after its first hit;
- moving-window: the times of the hits within the last window (at most `amount`);
- sliding-window-counter: this clock-aligned window's count plus the previous one's,
  weighted by how much of it still overlaps the last window (as `limits` does).

`MemoryCounters` is the in-process version; `redis_counters.RedisCounters` runs the
same rules in one Lua script. Both take the time from one clock: the process's for
memory, Redis's for Redis (so instances never disagree on it).
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import NamedTuple, Protocol

FIXED = "f"
MOVING = "m"
SLIDING = "s"
STRATEGY_CODES = {"fixed-window": FIXED, "moving-window": MOVING, "sliding-window-counter": SLIDING}
SWEEP_EVERY = 10.0  # seconds between sweeps of expired counters (memory bounded, not counting)


# The values below are named tuples, not dataclasses: several are made for every request.


class Charge(NamedTuple):
    """One limit applied to one request: `cost` against `amount` per `window` seconds."""

    key: str
    kind: str  # FIXED, MOVING or SLIDING
    amount: int
    window: int
    cost: int = 1


class Count(NamedTuple):
    """A counter after the operation: what is used of it, and seconds until it frees."""

    used: int
    reset_in: float


class Verdict(NamedTuple):
    """`refused`: the index of the first charge that did not fit, or None (all counted)."""

    refused: int | None
    counts: tuple[Count, ...]


class Settlement(NamedTuple):
    """Add `delta` to a fixed-window counter, if it still exists (else start it, if > 0)."""

    key: str
    window: int
    delta: int


class Counters(Protocol):
    async def take(self, charges: tuple[Charge, ...]) -> Verdict: ...

    async def settle(self, settlements: tuple[Settlement, ...]) -> None: ...


class MemoryCounters:
    """The counters of one process. Every call is plain code with no await inside, so each
    is atomic on the event loop."""

    def __init__(self) -> None:
        self.fixed: dict[str, list[float]] = {}  # key -> [count, expires at]
        self.moving: dict[str, deque[float]] = {}  # key -> times of hits, oldest first
        self.sliding: dict[str, list[float]] = {}  # key -> [window index, previous, current]
        self.expiry: dict[str, float] = {}  # moving and sliding keys -> when they can go
        self._next_sweep = 0.0

    async def take(self, charges: tuple[Charge, ...]) -> Verdict:
        return self.take_now(charges, time.time())

    def take_now(self, charges: tuple[Charge, ...], now: float) -> Verdict:
        if now >= self._next_sweep:
            self.sweep(now)
        fixed, moving = self.fixed, self.moving
        for i, charge in enumerate(charges):
            # What peek() says, without making a Count (this runs for every request).
            key, kind, amount, window, cost = charge
            if kind == FIXED:
                entry = fixed.get(key)
                used = 0 if entry is None or entry[1] <= now else entry[0]
            elif kind == MOVING:
                hits = moving.get(key)
                used = 0
                if hits:
                    start = now - window
                    while hits and hits[0] <= start:
                        hits.popleft()
                    used = len(hits)
            else:
                used = self.peek(charge, now).used
            if used + cost > amount:
                return Verdict(i, tuple(self.peek(c, now) for c in charges))
        counts = []
        for charge in charges:
            if charge.kind == FIXED:  # hit(), inline: a token reservation every request
                key = charge.key
                entry = fixed.get(key)
                if entry is None or entry[1] <= now:
                    entry = fixed[key] = [0, now + charge.window]
                entry[0] += charge.cost
                counts.append(Count(int(entry[0]), entry[1] - now))
            else:
                counts.append(self.hit(charge, now))
        return Verdict(None, tuple(counts))

    def peek(self, charge: Charge, now: float) -> Count:
        key, window = charge.key, charge.window
        if charge.kind == FIXED:
            entry = self.fixed.get(key)
            if entry is None or entry[1] <= now:
                return Count(0, window)
            return Count(int(entry[0]), entry[1] - now)
        if charge.kind == MOVING:
            hits = self.moving.get(key)
            if not hits:
                return Count(0, window)
            start = now - window
            while hits and hits[0] <= start:
                hits.popleft()
            return Count(len(hits), hits[0] + window - now if hits else window)
        index, previous, current = self.slide(key, now, window)
        elapsed = now - index * window
        weighted = previous * (window - elapsed) / window + current
        return Count(math.floor(weighted), window - elapsed)

    def hit(self, charge: Charge, now: float) -> Count:
        key, window, cost = charge.key, charge.window, charge.cost
        if charge.kind == FIXED:
            entry = self.fixed.get(key)
            if entry is None or entry[1] <= now:
                entry = self.fixed[key] = [0, now + window]
            entry[0] += cost
            return Count(int(entry[0]), entry[1] - now)
        self.expiry[key] = now + 2 * window
        if charge.kind == MOVING:
            hits = self.moving.get(key)
            if hits is None:
                hits = self.moving[key] = deque()
            if cost == 1:
                hits.append(now)
            else:
                hits.extend([now] * cost)
            return Count(len(hits), hits[0] + window - now)
        state = self.sliding[key] = list(self.slide(key, now, window))
        state[2] += cost
        elapsed = now - state[0] * window
        weighted = state[1] * (window - elapsed) / window + state[2]
        return Count(math.floor(weighted), window - elapsed)

    def slide(self, key: str, now: float, window: int) -> tuple[float, float, float]:
        index = now // window
        state = self.sliding.get(key)
        if state is None or state[0] < index - 1:
            return index, 0, 0
        if state[0] == index - 1:
            return index, state[2], 0
        return index, state[1], state[2]

    async def settle(self, settlements: tuple[Settlement, ...]) -> None:
        self.settle_now(settlements, time.time())

    def settle_now(self, settlements: tuple[Settlement, ...], now: float) -> None:
        for item in settlements:
            entry = self.fixed.get(item.key)
            if entry is not None and entry[1] > now:
                entry[0] = max(entry[0] + item.delta, 0)
            elif item.delta > 0:
                self.fixed[item.key] = [item.delta, now + item.window]

    def sweep(self, now: float) -> None:
        """Drop expired counters: memory stays bounded by the clients of the last window."""
        self._next_sweep = now + SWEEP_EVERY
        for key in [k for k, (_, ends) in self.fixed.items() if ends <= now]:
            del self.fixed[key]
        for key in [k for k, ends in self.expiry.items() if ends <= now]:
            del self.expiry[key]
            self.moving.pop(key, None)
            self.sliding.pop(key, None)
