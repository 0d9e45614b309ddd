"""The cache around the upstream call.

Runs last among the hooks, so limits have counted the request and the client's
identity is known. `before` decides (hit, miss or bypass) and, on a hit, leaves
the answer for the planner wrapper to hand the relay instead of an upstream
call; on a miss it tees the upstream's answer, and `after` stores it when it was
complete. Identical requests wait (up to CACHE_WAIT) for one already in flight.
A hit used no tokens: `after` reports zero usage to every hook after it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson

from ..exchange import Exchange, StateKey
from ..observe.stream_usage import drop_usage_chunk, has_usage
from ..pipeline import Contribution, Planner, Shared
from ..settings import Settings
from ..upstream import Upstream, UpstreamRequest, UpstreamResponse
from .admin import CacheAdmin
from .guard import GuardedStore
from .key import HEADER, cache_key, endpoint_kind, wants_cache
from .replay import CachedResponse, answer, storable, stream_storable
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
class Collector:
    """Keeps a copy of the answer as it passes, up to MAX_ENTRY bytes."""

    chunks: list[bytes] = field(default_factory=list)
    size: int = 0

    def tap(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size <= MAX_ENTRY:
            self.chunks.append(chunk)


@dataclass(slots=True)
class Pending:
    """A miss on its way to becoming an entry."""

    key: str
    kind: str
    collector: Collector
    done: asyncio.Event | None  # set when this exchange leads identical ones


_PENDING = StateKey[Pending]("cache entry in the making")
_HIT = StateKey[CachedResponse]("cached answer")


class CacheHook:
    """Answers repeated requests from the cache; stores complete answers."""

    def __init__(self, settings: CacheSettings, store: GuardedStore) -> None:
        self.settings = settings
        self.store = store
        self.in_flight: dict[str, asyncio.Event] = {}

    async def before(self, ex: Exchange) -> None:
        kind = endpoint_kind(ex)
        if kind is None:
            return
        body = ex.json() if wants_cache(ex, self.settings) else None
        if body is None or not self.store.available:
            self.bypass(ex)
            return
        key = cache_key(ex, body, self.settings.shared)
        entry = await self.store.get(key)
        if entry is None and key in self.in_flight:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.wait):
                    await self.in_flight[key].wait()
            entry = await self.store.get(key)
        if not self.store.available:
            self.bypass(ex)
        elif entry is not None:
            streamed = body.get("stream") is True
            options = body.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            if streamed and entry.form == "sse" and not usage and has_usage(entry.body):
                ex.body_filters.append(drop_usage_chunk)  # stored for a client that asked
            ex.set(_HIT, answer(entry, kind, streamed, usage))
            self.store.counts.hits += 1
            ex.outcome.cache = "hit"
            ex.response_headers.append(HIT)
        else:
            done = None
            if key not in self.in_flight:  # lead; a waiter that still missed goes on alone
                done = self.in_flight[key] = asyncio.Event()
            collector = Collector()
            ex.body_taps.append(collector.tap)  # before any filter: the upstream's own bytes
            ex.set(_PENDING, Pending(key, kind, collector, done))
            self.store.counts.misses += 1
            ex.outcome.cache = "miss"
            ex.response_headers.append(MISS)

    def bypass(self, ex: Exchange) -> None:
        self.store.counts.bypasses += 1
        ex.outcome.cache = "bypass"
        ex.response_headers.append(BYPASS)

    async def after(self, ex: Exchange) -> None:
        pending = ex.get(_PENDING)
        if pending is not None:
            try:
                await self.remember(ex, pending)
            finally:
                if pending.done is not None:
                    pending.done.set()
                    self.in_flight.pop(pending.key, None)
        elif ex.get(_HIT) is not None:
            ex.outcome.reply = {**(ex.outcome.reply or {}), "usage": dict(ZERO_USAGE)}

    async def remember(self, ex: Exchange, pending: Pending) -> None:
        outcome = ex.outcome
        collector = pending.collector
        if outcome.status != 200 or not outcome.complete or outcome.error:
            return
        if collector.size > MAX_ENTRY:
            return
        body = b"".join(collector.chunks)
        if body.lstrip()[:1] == b"{":
            try:
                reply = orjson.loads(body)
            except orjson.JSONDecodeError:
                return
            if isinstance(reply, dict) and storable(pending.kind, reply):
                await self.store.put(pending.key, "json", body, ex.route.name)
        elif body.endswith(b"\n\n") and stream_storable(pending.kind, body):
            await self.store.put(pending.key, "sse", body, ex.route.name)

    def wrap_planner(self, inner: Planner) -> Planner:
        def plan(ex: Exchange) -> UpstreamRequest:
            cached = ex.get(_HIT)
            if cached is None:
                return inner(ex)
            return UpstreamRequest(
                ex.method,
                ex.route.origin.url(ex.raw_upstream_path, ""),
                [],
                b"",
                ex.route.name,
                compose=served(cached),
            )

        return plan


def served(cached: CachedResponse) -> Callable[[Upstream], Awaitable[UpstreamResponse]]:
    async def compose(upstream: Upstream) -> UpstreamResponse:
        return cached

    return compose


def install(settings: Settings, shared: Shared) -> Contribution:
    """The cache hook, its backend, and `/admin/cache` when ADMIN_TOKEN is set."""
    store = GuardedStore(open_store(settings.cache), settings.cache.note)
    hook = CacheHook(settings.cache, store)
    token = settings.users.admin_token
    mounts = (("/admin/cache", CacheAdmin(token, store)),) if token else ()
    return Contribution(
        hooks=(hook,), resources=(store,), wrap_planner=hook.wrap_planner, mounts=mounts
    )
