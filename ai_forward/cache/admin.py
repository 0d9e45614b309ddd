"""`/admin/cache`: the cache's figures, and clearing it (enabled by ADMIN_TOKEN).

    GET    /admin/cache                                 stats
    DELETE /admin/cache?route=NAME&older_than=2h        clear (both filters optional)

Every call carries `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time.
`aifd cache stats|clear` does the same from the command line (`report`, `clear`).
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qs

import orjson

from ..errors import GatewayError, InvalidField, MethodNotAllowed, NotFound
from ..keys import AdminToken
from ..types import Receive, Scope, Send
from .guard import GuardedStore
from .store import StoreUnavailable

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class CacheAdmin:
    """The ASGI app mounted at /admin/cache."""

    def __init__(self, token: str, store: GuardedStore) -> None:
        self.admin = AdminToken(token)
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self.authorize(scope)
            if scope["path"].rstrip("/") != "/admin/cache":
                raise NotFound(f"no admin call {scope['path']}; see the README for them")
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            if scope["method"] == "GET":
                body = await report(self.store)
            elif scope["method"] == "DELETE":
                route = query.get("route", [None])[0]
                age = query.get("older_than", [None])[0]
                body = {"deleted": await clear(self.store, route, age)}
            else:
                raise MethodNotAllowed("/admin/cache takes GET (stats) and DELETE (clear)")
        except GatewayError as err:
            await respond(send, err.status, err.body())
            return
        except StoreUnavailable as exc:
            problem = f"the cache backend is unreachable ({exc}); retry shortly"
            await respond(send, 503, error(problem, "service_unavailable"))
            return
        await respond(send, 200, orjson.dumps(body))

    def authorize(self, scope: Scope) -> None:
        self.admin.check(scope["headers"])


async def report(store: GuardedStore) -> dict[str, Any]:
    """Entries and bytes in the backend; hits, misses and bypasses of this process."""
    stats = await store.store.stats()
    counts = store.counts
    return {
        "backend": store.store.name,
        "entries": stats.entries,
        "bytes": stats.bytes,
        "hits": counts.hits,
        "misses": counts.misses,
        "bypasses": counts.bypasses,
        "stored": counts.stored,
        "dropped": counts.dropped,
    }


async def clear(store: GuardedStore, route: str | None, older_than: str | None) -> int:
    """Drop entries of `route` (a route name) older than `older_than` (90s, 30m, 2h, 7d)."""
    before = None if older_than is None else time.time() - parse_age(older_than)
    return await store.store.clear(route or None, before)


def parse_age(value: str) -> float:
    match = _AGE.match(value.lower())
    if not match:
        raise InvalidField(
            f"older_than={value!r}: expected an age such as 90s, 30m, 2h or 7d",
            param="older_than",
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def error(message: str, code: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": code, "param": None, "code": code}})


async def respond(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
