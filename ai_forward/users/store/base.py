"""The store of users and usage: one interface, an embedded and a shared implementation.

    sqlite:///aifd.db   SqliteStore  one file, no server; one process or a few on one host
    redis://host/0      RedisStore   several instances share users, usage and invalidations

Every method is a coroutine and never blocks the event loop. Mutations that make
a key stop working (reset, delete, change) announce the old key's hash through
`watch`, so the key caches of every process can drop it. A change to the hosts
added at run time (X-Host-Final) is announced as HOSTS_CHANGED.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..user import User, iso

# The hash of a key that changed, or None for "anything may have changed".
Invalidate = Callable[[str | None], None]
UsageKey = tuple[str, str, str]  # (day YYYY-MM-DD, user name, model)
UsageCount = tuple[int, int, int]  # (requests, prompt tokens, completion tokens)
# Announced through `watch` when a runtime host is added, changed or removed.
HOSTS_CHANGED = "hosts"


class UserExists(Exception):
    """A user of that name already exists."""


@dataclass(frozen=True, slots=True)
class UsageRow:
    day: str
    name: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int

    def public(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "user": self.name,
            "model": self.model,
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


@dataclass(frozen=True, slots=True)
class RuntimeHost:
    """A host X-Host-Final may name, added by the admin at run time, with its real keys."""

    host: str
    base_url: str
    keys: tuple[str, ...] = field(repr=False)
    added_at: float

    def public(self) -> dict[str, Any]:
        """What the admin may see again: the keys' last characters only."""
        return {
            "host": self.host,
            "base_url": self.base_url,
            "keys": [key_hint(key) for key in self.keys],
            "added_at": iso(self.added_at),
        }


def key_hint(key: str) -> str:
    return "..." + key[-4:] if len(key) >= 16 else "..."


class UserStore(Protocol):
    """Users by name and by key hash, and usage counters per day, user and model."""

    async def __aenter__(self) -> UserStore: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def create(self, user: User) -> None:
        """Add `user`; UserExists if the name is taken."""

    async def get(self, name: str) -> User | None: ...

    async def by_key_hash(self, key_hash: str) -> User | None: ...

    async def users(self) -> list[User]: ...

    async def replace(self, old: User, new: User) -> bool:
        """Store `new` in place of `old` (same name); False if the user is gone."""

    async def delete(self, name: str) -> User | None: ...

    async def add_usage(self, counts: Mapping[UsageKey, UsageCount]) -> None: ...

    async def usage(self, since: str, name: str | None = None) -> list[UsageRow]:
        """Rows from day `since` (YYYY-MM-DD) on, for one user or all, by day, user, model."""

    async def hosts(self) -> list[RuntimeHost]:
        """The runtime hosts, by name."""

    async def set_host(self, host: RuntimeHost) -> None:
        """Add `host`, or replace the one of that name."""

    async def remove_host(self, host: str) -> bool:
        """False if there was no such host."""

    async def ping(self) -> str | None:
        """None when the store answers, else why it does not (never its password)."""

    async def watch(self, invalidate: Invalidate) -> None:
        """Call `invalidate` for every key changed by any process; runs until cancelled."""


def open_store(url: str) -> UserStore:
    """The store for STORE_URL; enter it to use it."""
    if url.startswith("sqlite:"):
        from .sqlite_store import SqliteStore

        return SqliteStore(url)
    from .redis_store import RedisStore

    return RedisStore(url)
