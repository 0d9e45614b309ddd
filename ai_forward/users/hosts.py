"""Hosts X-Host-Final may name, added at run time with their real keys (ai-proxy-cloudflare's
`addkey`), kept in the user store so every worker and instance serves them.

    POST   /admin/hosts          {"host": "api.groq.com", "keys": ["gsk_..."]}: add or replace
    GET    /admin/hosts          list (each key only as its last four characters)
    DELETE /admin/hosts/{host}   remove; requests naming it get 403 at once

`HostSync` loads them at start-up and again whenever the store announces a change
(at once on Redis and in the process that made it; within a second on SQLite), puts
them in the table the host selector reads, and gives their keys to the redactor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Sequence
from typing import Any

from loguru import logger

from ..env import SettingsError
from ..providers.runtime_hosts import RuntimeHosts
from ..providers.settings import AllowedHost, host_origin
from ..redact import MIN_KEY, Redactor
from ..tasks import stop
from .store import HOSTS_CHANGED, RuntimeHost, UserStore

MAX_KEYS = 20
MAX_KEY_LENGTH = 1024


class HostFieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def checked_host(data: dict[str, Any], configured: Collection[str]) -> RuntimeHost:
    """A runtime host from `{"host": ..., "keys": [...]}` (or one `"key"`); HostFieldError
    naming the field otherwise."""
    unknown = set(data) - {"host", "keys", "key"}
    if unknown:
        raise HostFieldError(min(unknown), "unknown field; a host has `host` and `keys`")
    entry = data.get("host")
    if not isinstance(entry, str) or not entry.strip():
        raise HostFieldError("host", "give the host X-Host-Final will name: api.groq.com")
    try:
        host, base_url = host_origin(entry, "host")
    except SettingsError as exc:
        raise HostFieldError("host", str(exc)) from None
    if host in configured:
        raise HostFieldError("host", f"{host} is in HOST_ALLOWLIST; change its keys there")
    keys = data.get("keys", [data["key"]] if "key" in data else None)
    if not isinstance(keys, list) or not keys or len(keys) > MAX_KEYS:
        raise HostFieldError("keys", f"give the host's real keys: a list of 1 to {MAX_KEYS}")
    for key in keys:
        if not isinstance(key, str) or not MIN_KEY <= len(key) <= MAX_KEY_LENGTH:
            raise HostFieldError(
                "keys", f"each key is a string of {MIN_KEY} to {MAX_KEY_LENGTH} characters"
            )
        if not key.isprintable() or any(c.isspace() or c == "," for c in key):
            raise HostFieldError("keys", "a key holds no spaces, commas or control characters")
    return RuntimeHost(host, base_url, tuple(dict.fromkeys(keys)), time.time())


class HostSync:
    """Keeps `table` (and the redactor) equal to the store's runtime hosts."""

    def __init__(
        self,
        store: UserStore,
        table: RuntimeHosts,
        redactor: Redactor,
        configured: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.table = table
        self.redactor = redactor
        self.configured = frozenset(configured)
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> HostSync:
        try:
            await self.reload()
        except Exception as exc:
            logger.warning("runtime hosts: the user store is unreachable ({}); retrying", exc)
            self._changed.set()
        self._tasks = [asyncio.create_task(self._watch()), asyncio.create_task(self._apply())]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await stop(*self._tasks)
        self._tasks = []

    async def reload(self) -> None:
        hosts = await self.store.hosts()
        # Keys first: no answer may pass unredacted once a host can be used.
        self.redactor.add(key for host in hosts for key in host.keys)
        self.table.replace(
            AllowedHost(h.host, h.base_url, h.keys) for h in hosts if h.host not in self.configured
        )

    def _heard(self, what: str | None) -> None:
        if what is None or what == HOSTS_CHANGED:
            self._changed.set()

    async def _watch(self) -> None:
        while True:
            try:
                await self.store.watch(self._heard)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._changed.set()
                await asyncio.sleep(1.0)

    async def _apply(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                await self.reload()
            except Exception as exc:
                logger.warning("runtime hosts: reading them failed ({}); retrying", exc)
                self._changed.set()
                await asyncio.sleep(1.0)
