"""The cache around the upstream call.

Runs last among the hooks, so limits have counted the request and the client's
identity is known. `before` decides (hit, miss or bypass). On a hit it hands the
forwarder the answer ready to send (`ex.answer`): built once per entry and form,
then kept (`prepared.py`), so a hit costs the key (remembered for a body seen
before, see `key.py`) and a lookup, and no upstream call. On a miss it keeps a copy
of the upstream's answer as it passes (no bigger than an entry may be), and `after`
stores it when it was complete. Identical requests wait (up to CACHE_WAIT; none with
CACHE_WAIT=0) for one already in flight. A hit used no tokens:
`after` reports zero usage to every hook after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import orjson

from ..exchange import Exchange, LocalAnswer, StateKey
from ..pipeline import Contribution, Shared
from ..settings import Settings
from .admin import CacheAdmin
from .guard import GuardedStore
from .key import HEADER, CacheKeys, Lookup, wants_cache
from .prepared import PreparedAnswers
from .replay import answer, storable, stream_storable
from .settings import CacheSettings
from .store import open_store

MAX_ENTRY = 8 * 1024 * 1024  # a bigger answer is relayed, not cached
ZERO_USAGE = {
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "total_tokens": 0,
    "input_tokens": 0,
    "output_tokens": 0,
}
HIT = (HEADER, b"hit")
MISS = (HEADER, b"miss")
BYPASS = (HEADER, b"bypass")


@dataclass(slots=True)
class Pending:
    """A miss on its way to becoming an entry: a copy of the answer as it passes, kept
    while it is no bigger than `limit`."""

    key: str
    kind: str
    limit: int
    leads: bool  # identical requests wait for this one
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    done: asyncio.Event | None = None  # made when an identical request waits

    def tap(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size <= self.limit:
            self.chunks.append(chunk)


_PENDING = StateKey[Pending]("cache entry in the making")


class CacheHook:
    """Answers repeated requests from the cache; stores complete answers."""

    def __init__(
        self, settings: CacheSettings, store: GuardedStore, max_entry: int = MAX_ENTRY
    ) -> None:
        self.settings = settings
        self.store = store
        self.max_entry = max_entry
        self.in_flight: dict[str, Pending] = {}
        self.prepared = PreparedAnswers()
        self.keys = CacheKeys(settings.shared)

    async def before(self, ex: Exchange) -> None:
        kind = self.keys.kind(ex)
        if kind is None:
            return
        lookup = self.keys.lookup(ex) if wants_cache(ex, self.settings) else None
        store = self.store  # `down_until` first: a backend that never failed is available
        if lookup is None or (store.down_until and not store.available):
            self.bypass(ex)
            return
        key = lookup.key
        local = store.local
        value = local.get_now(key) if local is not None else await store.get(key)
        if value is None and self.settings.wait and (leader := self.in_flight.get(key)) is not None:
            done = leader.done = leader.done or asyncio.Event()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.wait):
                    await done.wait()
            value = await store.get(key)
        if value is not None:
            if store.down_until and not store.available:
                self.bypass(ex)
                return
            ready = self.prepared.get(lookup, value) or await self.ready(lookup, kind, value)
            if ready is not None:
                ex.answer = ready
                store.counts.hits += 1
                ex.outcome.cache = "hit"
                ex.response_headers.append(HIT)
                return
        elif store.down_until and not store.available:
            self.bypass(ex)
            return
        # A waiter that still missed goes on alone; with CACHE_WAIT=0 nobody waits.
        leads = bool(self.settings.wait) and key not in self.in_flight
        pending = Pending(key, kind, self.max_entry, leads)
        if leads:
            self.in_flight[key] = pending
        ex.body_taps.append(pending.tap)  # before any filter: the upstream's own bytes
        ex.set(_PENDING, pending)
        store.counts.misses += 1
        ex.outcome.cache = "miss"
        ex.response_headers.append(MISS)

    async def ready(self, lookup: Lookup, kind: str, value: bytes) -> LocalAnswer | None:
        """The entry in the form `lookup` wants, built and kept; None if it cannot be decoded."""
        entry = await self.store.entry(lookup.key, value)
        if entry is None:
            return None
        ready = answer(entry, kind, lookup.streamed, lookup.usage)
        self.prepared.put(lookup, value, ready)
        return ready

    def bypass(self, ex: Exchange) -> None:
        self.store.counts.bypasses += 1
        ex.outcome.cache = "bypass"
        ex.response_headers.append(BYPASS)

    async def after(self, ex: Exchange) -> None:
        outcome = ex.outcome
        if outcome.cache == "hit":
            outcome.reply = {**(outcome.reply or {}), "usage": dict(ZERO_USAGE)}
            return
        pending = ex.get(_PENDING) if outcome.cache == "miss" else None
        if pending is not None:
            try:
                await self.remember(ex, pending)
            finally:
                if pending.leads:
                    self.in_flight.pop(pending.key, None)
                    if pending.done is not None:
                        pending.done.set()

    async def remember(self, ex: Exchange, pending: Pending) -> None:
        outcome = ex.outcome
        if outcome.status != 200 or not outcome.complete or outcome.error:
            return
        if pending.size > pending.limit:
            return
        body = b"".join(pending.chunks)
        if body[:64].lstrip()[:1] == b"{":
            try:
                reply = orjson.loads(body)
            except orjson.JSONDecodeError:
                return
            if isinstance(reply, dict) and storable(pending.kind, reply):
                await self.store.put(pending.key, "json", body, ex.route.name)
        elif body.endswith(b"\n\n") and stream_storable(pending.kind, body):
            await self.store.put(pending.key, "sse", body, ex.route.name)


def install(settings: Settings, shared: Shared) -> Contribution:
    """The cache hook, its backend, and `/admin/cache` when ADMIN_TOKEN is set."""
    cache = settings.cache
    store = GuardedStore(open_store(cache), cache.note)
    # An answer the memory backend could never hold is not even copied.
    max_entry = min(MAX_ENTRY, cache.max_bytes) if cache.backend == "memory" else MAX_ENTRY
    hook = CacheHook(cache, store, max_entry)
    token = settings.users.admin_token
    mounts = (("/admin/cache", CacheAdmin(token, store)),) if token else ()
    return Contribution(hooks=(hook,), resources=(store,), mounts=mounts)
