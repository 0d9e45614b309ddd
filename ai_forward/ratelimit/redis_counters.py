"""The counters in Redis: every limit of a request in one Lua script, one round trip.

The rules are those of `counters.MemoryCounters`. All keys share one hash tag, so a
Redis Cluster keeps them in one slot and runs a multi-key script on them; a request's
own limits and the global one can then be counted together. Time comes from Redis
(`TIME`), so every instance counts against the same clock.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .counters import Charge, Count, Settlement, Verdict

KEY_PREFIX = "aifd:{limits}:"

# KEYS: one per charge. ARGV: kind, amount, window (s), cost, for each charge in turn.
# Returns: index of the refusing charge (1-based, 0 for none), then per charge the count
# used and the milliseconds until it frees.
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local used, reset, slid = {}, {}, {}
local refused = 0
for i, key in ipairs(KEYS) do
  local kind = ARGV[i * 4 - 3]
  local amount, window = tonumber(ARGV[i * 4 - 2]), tonumber(ARGV[i * 4 - 1])
  local cost = tonumber(ARGV[i * 4])
  if kind == 'f' then
    used[i] = tonumber(redis.call('GET', key) or '0')
    local ttl = redis.call('PTTL', key)
    reset[i] = ttl > 0 and ttl / 1000 or window
  elseif kind == 'm' then
    local start = now - window
    local oldest = redis.call('LINDEX', key, -1)
    while oldest and tonumber(oldest) <= start do
      redis.call('RPOP', key)
      oldest = redis.call('LINDEX', key, -1)
    end
    used[i] = redis.call('LLEN', key)
    reset[i] = oldest and tonumber(oldest) + window - now or window
  else
    local index = math.floor(now / window)
    local h = redis.call('HMGET', key, 'i', 'p', 'c')
    local at, prev, curr = tonumber(h[1]), tonumber(h[2]) or 0, tonumber(h[3]) or 0
    if at == nil or at < index - 1 then
      prev, curr = 0, 0
    elseif at == index - 1 then
      prev, curr = curr, 0
    end
    local elapsed = now - index * window
    slid[i] = {index, prev, curr, (window - elapsed) / window}
    used[i] = math.floor(prev * slid[i][4] + curr)
    reset[i] = window - elapsed
  end
  if refused == 0 and used[i] + cost > amount then
    refused = i
  end
end
if refused == 0 then
  for i, key in ipairs(KEYS) do
    local kind, window = ARGV[i * 4 - 3], tonumber(ARGV[i * 4 - 1])
    local cost = tonumber(ARGV[i * 4])
    if kind == 'f' then
      used[i] = redis.call('INCRBY', key, cost)
      if redis.call('PTTL', key) < 0 then
        redis.call('PEXPIRE', key, window * 1000)
        reset[i] = window
      end
    elseif kind == 'm' then
      for _ = 1, cost do
        redis.call('LPUSH', key, string.format('%.6f', now))
      end
      redis.call('PEXPIRE', key, window * 1000)
      used[i] = redis.call('LLEN', key)
      reset[i] = tonumber(redis.call('LINDEX', key, -1)) + window - now
    else
      local s = slid[i]
      redis.call('HSET', key, 'i', s[1], 'p', s[2], 'c', s[3] + cost)
      redis.call('PEXPIRE', key, window * 2000)
      used[i] = math.floor(s[2] * s[4] + s[3] + cost)
    end
  end
end
local out = {refused}
for i = 1, #KEYS do
  out[#out + 1] = used[i]
  out[#out + 1] = math.floor(reset[i] * 1000)
end
return out
"""

# KEYS: fixed-window counters. ARGV: delta, window (s), for each in turn.
SETTLE = """
for i, key in ipairs(KEYS) do
  local delta, window = tonumber(ARGV[i * 2 - 1]), tonumber(ARGV[i * 2])
  if redis.call('PTTL', key) > 0 then
    if redis.call('INCRBY', key, delta) < 0 then
      redis.call('SET', key, 0, 'KEEPTTL')
    end
  elseif delta > 0 then
    redis.call('SET', key, delta, 'PX', window * 1000)
  end
end
return #KEYS
"""


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script and the hash Redis knows it by."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


# Runs a script on the storage: (script, keys, args) -> its reply.
ScriptRunner = Callable[[Script, list[str], list[str | int]], Awaitable[Any]]


class RedisCounters:
    """Runs TAKE and SETTLE on Redis, through `run` (a `RedisLink`, or redis-py for TLS,
    sockets, Sentinel and Cluster).

    Settlements are group-committed: while one SETTLE is on its way, the settlements of
    the replies that end meanwhile gather, and go together in the next one. Each `settle`
    still returns once its own settlement is counted in Redis.
    """

    def __init__(self, run: ScriptRunner) -> None:
        self._run = run
        self._take = Script(TAKE)
        self._settle = Script(SETTLE)
        self._gathered: list[Settlement] = []
        self._gathered_done: asyncio.Future[None] | None = None
        self._sending = False

    async def take(self, charges: tuple[Charge, ...]) -> Verdict:
        args: list[str | int] = []
        for charge in charges:
            args += (charge.kind, charge.amount, charge.window, charge.cost)
        keys = [KEY_PREFIX + c.key for c in charges]
        reply = await self._run(self._take, keys, args)
        refused = int(reply[0])
        counts = tuple(
            Count(int(reply[i]), int(reply[i + 1]) / 1000) for i in range(1, len(reply), 2)
        )
        return Verdict(refused - 1 if refused else None, counts)

    async def settle(self, settlements: tuple[Settlement, ...]) -> None:
        if self._sending:  # join the next batch
            self._gathered += settlements
            if self._gathered_done is None:
                self._gathered_done = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._gathered_done)
            return
        self._sending = True
        try:
            await self._send(settlements)
        finally:
            self._send_gathered()

    def _send_gathered(self) -> None:
        """Send what gathered while the last batch was on its way, as one more batch."""
        gathered, done = self._gathered, self._gathered_done
        if done is None:
            self._sending = False
            return
        self._gathered, self._gathered_done = [], None
        task = asyncio.ensure_future(self._send(tuple(gathered)))

        def sent(task: asyncio.Future[None]) -> None:
            if task.cancelled():
                done.cancel()
            elif task.exception() is not None:
                done.set_exception(task.exception())  # type: ignore[arg-type]
                done.exception()  # retrieved here too: its waiters may all be gone
            else:
                done.set_result(None)
            self._send_gathered()

        task.add_done_callback(sent)

    async def _send(self, settlements: tuple[Settlement, ...]) -> None:
        args: list[str | int] = []
        for item in settlements:
            args += (item.delta, item.window)
        await self._run(self._settle, [KEY_PREFIX + s.key for s in settlements], args)
