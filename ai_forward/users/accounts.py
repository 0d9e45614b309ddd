"""What the admin API and `aifd users` both do to users, written once.

Creating a user (its key made here and shown once), changing one without losing
a concurrent change, a new key, and the default window of usage reports. The
errors carry the facts; each front end words them for its own audience.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from .store import UserExists, UserStore
from .user import User, hash_key, key_hint, new_key, utc_day

USAGE_DAYS = 30


class AccountError(Exception):
    """A user operation that cannot be done as asked."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class NameTaken(AccountError):
    """A user of that name exists already."""


class NoSuchUser(AccountError):
    """No user of that name (`meanwhile`: it was deleted while being changed)."""

    def __init__(self, name: str, *, meanwhile: bool = False) -> None:
        super().__init__(name)
        self.meanwhile = meanwhile


class ChangedMeanwhile(AccountError):
    """The user was changed by someone else between reading and writing it."""


async def create(store: UserStore, fields: dict[str, Any]) -> tuple[User, str]:
    """A new user from checked `fields`, and its key (never stored, only its hash)."""
    key = new_key()
    user = User(key_hash=hash_key(key), key_hint=key_hint(key), created_at=time.time(), **fields)
    try:
        await store.create(user)
    except UserExists:
        raise NameTaken(user.name) from None
    return user, key


async def find(store: UserStore, name: str) -> User:
    user = await store.get(name)
    if user is None:
        raise NoSuchUser(name)
    return user


async def replace(store: UserStore, old: User, new: User) -> None:
    """Write `new` in place of `old`, only if nobody changed or deleted it meanwhile."""
    if not await store.replace(old, new):
        if await store.get(old.name) is None:
            raise NoSuchUser(old.name, meanwhile=True)
        raise ChangedMeanwhile(old.name)


async def change(store: UserStore, name: str, edit: Callable[[User], User]) -> User:
    """The user named `name`, edited and written back; returns the new version."""
    user = await find(store, name)
    new = edit(user)
    await replace(store, user, new)
    return new


def with_key(user: User, key: str) -> User:
    """`user` with the key `key` (from `new_key`); the old one stops working once written."""
    return dataclasses.replace(user, key_hash=hash_key(key), key_hint=key_hint(key))


def usage_since(day: str | None) -> str:
    """The first day of a usage report: `day` (YYYY-MM-DD), else USAGE_DAYS ago.

    Raises ValueError for a malformed day.
    """
    if day is None:
        return (date.fromisoformat(utc_day()) - timedelta(days=USAGE_DAYS)).isoformat()
    return date.fromisoformat(day).isoformat()
