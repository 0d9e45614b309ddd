"""Users and usage in Redis, shared by every instance that points at it.

    aifd:user:{name}     the user as JSON (key hash and hint, never the key)
    aifd:key:{sha256}    -> name
    aifd:users           set of names
    aifd:usage:{day}     hash "{name}\\x1f{model}\\x1f{r|p|c|k|n}" -> count (kept 400 days)
    aifd:hosts           hash host -> JSON {base_url, keys, added_at}: runtime X-Host-Final hosts
    aifd:keys            channel: the hash of every key reset, deleted or changed, and
                         "hosts" when a runtime host changed

Every instance subscribes to `aifd:keys` and drops the announced key from its
cache at once; after a lost connection it drops the whole cache, since it may
have missed announcements.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import orjson
from loguru import logger
from redis.exceptions import RedisError, WatchError

from ...budgets.budget import check_budget
from ...redisconn import RedisConnection
from ..user import User, utc_day
from .base import (
    HOSTS_CHANGED,
    Invalidate,
    RuntimeHost,
    UsageCount,
    UsageKey,
    UsageRow,
    UserExists,
)

PREFIX = "aifd:"
CHANNEL = PREFIX + "keys"
USAGE_DAYS = 400
_SEP = "\x1f"
_KINDS = ("r", "p", "c", "k", "n")  # requests, prompt, completion, cached, nano-dollars


class RedisStore(RedisConnection):
    """The shared store (STORE_URL=redis://...)."""

    what = "the Redis store"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._local: list[Invalidate] = []
        self._subscribed = False

    async def ping(self) -> str | None:
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            return f"Redis does not answer ({type(exc).__name__})"
        return None

    async def create(self, user: User) -> None:
        if not await self.client.set(user_key(user.name), dump(user), nx=True):
            raise UserExists(user.name)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(PREFIX + "key:" + user.key_hash, user.name)
            pipe.sadd(PREFIX + "users", user.name)
            await pipe.execute()

    async def get(self, name: str) -> User | None:
        raw = await self.client.get(user_key(name))
        return load(str(raw)) if raw else None

    async def by_key_hash(self, key_hash: str) -> User | None:
        name = await self.client.get(PREFIX + "key:" + key_hash)
        user = await self.get(str(name)) if name else None
        return user if user is not None and user.key_hash == key_hash else None

    async def users(self) -> list[User]:
        names = sorted(await self.client.smembers(PREFIX + "users"))
        if not names:
            return []
        raws = await self.client.mget([user_key(str(n)) for n in names])
        return [load(str(raw)) for raw in raws if raw]

    async def replace(self, old: User, new: User) -> bool:
        return await self._change(old, new)

    async def delete(self, name: str) -> User | None:
        user = await self.get(name)
        if user is None or not await self._change(user, None):
            return None
        return user

    async def _change(self, old: User, new: User | None) -> bool:
        """Replace or (new=None) delete `old` if it is still what is stored."""
        ukey = user_key(old.name)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                await pipe.watch(ukey)
                raw = await pipe.get(ukey)
                if not raw or load(str(raw)).key_hash != old.key_hash:
                    return False
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.delete(PREFIX + "key:" + old.key_hash)
                if new is None:
                    pipe.delete(ukey)
                    pipe.srem(PREFIX + "users", old.name)
                else:
                    pipe.set(ukey, dump(new))
                    pipe.set(PREFIX + "key:" + new.key_hash, new.name)
                await pipe.execute()
        except WatchError:
            return False  # changed by someone else meanwhile: the caller reports a conflict
        finally:
            await self.client.publish(CHANNEL, old.key_hash)
            for invalidate in self._local:
                invalidate(old.key_hash)
        return True

    async def add_usage(self, counts: Mapping[UsageKey, UsageCount]) -> None:
        if not counts:
            return
        ttl = timedelta(days=USAGE_DAYS)
        async with self.client.pipeline(transaction=False) as pipe:
            for (day, name, model), values in counts.items():
                key = PREFIX + "usage:" + day
                for kind, value in zip(_KINDS, values, strict=True):
                    if value:
                        pipe.hincrby(key, _SEP.join((name, model, kind)), value)
                pipe.expire(key, ttl)
            await pipe.execute()

    async def usage(self, since: str, name: str | None = None) -> list[UsageRow]:
        first, today = date.fromisoformat(since), date.fromisoformat(utc_day())
        first = max(first, today - timedelta(days=USAGE_DAYS))
        days = [(first + timedelta(days=i)).isoformat() for i in range((today - first).days + 1)]
        async with self.client.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hgetall(PREFIX + "usage:" + day)
            tables: list[dict[str, str]] = await pipe.execute()
        rows: list[UsageRow] = []
        for day, table in zip(days, tables, strict=True):
            counts: dict[tuple[str, str], list[int]] = {}
            for field, value in table.items():
                who, model, kind = field.split(_SEP)
                if name is None or who == name:
                    row = counts.setdefault((who, model), [0] * len(_KINDS))
                    row[_KINDS.index(kind)] += int(value)
            rows += [UsageRow(day, w, m, *c) for (w, m), c in sorted(counts.items())]
        return rows

    async def hosts(self) -> list[RuntimeHost]:
        table = await self.client.hgetall(PREFIX + "hosts")
        found = []
        for host, raw in sorted((str(k), str(v)) for k, v in table.items()):
            data = orjson.loads(raw)
            found.append(RuntimeHost(host, data["base_url"], tuple(data["keys"]), data["added_at"]))
        return found

    async def set_host(self, host: RuntimeHost) -> None:
        data = {"base_url": host.base_url, "keys": host.keys, "added_at": host.added_at}
        await self.client.hset(PREFIX + "hosts", host.host, orjson.dumps(data).decode())
        await self._hosts_changed()

    async def remove_host(self, host: str) -> bool:
        removed = await self.client.hdel(PREFIX + "hosts", host)
        await self._hosts_changed()
        return bool(removed)

    async def _hosts_changed(self) -> None:
        await self.client.publish(CHANNEL, HOSTS_CHANGED)
        for invalidate in self._local:
            invalidate(HOSTS_CHANGED)

    async def watch(self, invalidate: Invalidate) -> None:
        self._local.append(invalidate)
        delay = 0.5
        try:
            while True:
                try:
                    await self._listen(invalidate)
                except (RedisError, OSError) as exc:
                    if delay == 0.5:
                        logger.warning("user store: lost the key invalidation channel ({})", exc)
                invalidate(None)
                await asyncio.sleep(delay)
                delay = 0.5 if self._subscribed else min(delay * 2, 10.0)
        finally:
            self._local.remove(invalidate)

    async def _listen(self, invalidate: Invalidate) -> None:
        self._subscribed = False
        async with self.client.pubsub() as pubsub:
            await pubsub.subscribe(CHANNEL)
            self._subscribed = True
            invalidate(None)  # announcements made before this subscription were missed
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    invalidate(str(message["data"]))


def user_key(name: str) -> str:
    return PREFIX + "user:" + name


def dump(user: User) -> str:
    fields: dict[str, Any] = {
        "name": user.name,
        "key_hash": user.key_hash,
        "key_hint": user.key_hint,
        "rpm": user.rpm,
        "tpm": user.tpm,
        "models": user.models,
        "routes": user.routes,
        "expires_at": user.expires_at,
        "created_at": user.created_at,
        "budget": user.budget.public() if user.budget else None,
    }
    return orjson.dumps(fields).decode()


def load(raw: str) -> User:
    data = orjson.loads(raw)
    data["models"] = tuple(data["models"])
    data["routes"] = tuple(data["routes"])
    data["budget"] = check_budget(data.get("budget"))
    return User(**data)
