"""The `/admin` API: users and their keys, and usage (enabled by ADMIN_TOKEN).

    POST   /admin/users               create; the key is in the answer, once
    GET    /admin/users               list
    GET    /admin/users/{name}        one user, with usage (?since=YYYY-MM-DD)
    PATCH  /admin/users/{name}        change rpm, tpm, models, routes, expires_at, budget
    POST   /admin/users/{name}/reset  a new key; the old one stops working at once
    DELETE /admin/users/{name}        delete; the key stops working at once
    GET    /admin/usage               tokens and cost per day, user and model, with totals
                                      (?since=YYYY-MM-DD&user=NAME)
    POST   /admin/hosts               add (or replace) a host X-Host-Final may name, with keys
    GET    /admin/hosts               list them (keys as their last characters only)
    DELETE /admin/hosts/{host}        remove one (see `hosts.py`)

Every call carries `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time, or
the dashboard's session cookie with its `X-CSRF-Token` (see `session.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from loguru import logger
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from ..errors import (
    Conflict,
    GatewayError,
    InvalidField,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from ..keys import AdminToken, find_key
from ..types import Receive, Scope, Send
from . import accounts
from .hosts import HostFieldError, HostSync, checked_host
from .report import usage_report
from .session import AdminSessions, cookie
from .store import UserStore
from .usage import UsageWriter
from .user import FieldError, User, check_fields, new_key

MAX_BODY = 64 * 1024
Endpoint = Callable[[Request], Awaitable[Response]]


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class AdminAPI:
    """The ASGI app mounted at /admin by the gateway."""

    def __init__(
        self,
        token: str,
        store: UserStore,
        usage: UsageWriter,
        routes: Sequence[str],
        hosts: HostSync,
    ) -> None:
        self.admin = AdminToken(token)
        self.sessions = AdminSessions(token)
        self.store = store
        self.usage = usage
        self.routes = tuple(routes)
        self.hosts = hosts
        self.router = Router(
            routes=[
                Route("/admin/users", self.create, methods=["POST"]),
                Route("/admin/users", self.list, methods=["GET"]),
                Route("/admin/users/{name}", self.show, methods=["GET"]),
                Route("/admin/users/{name}", self.change, methods=["PATCH"]),
                Route("/admin/users/{name}", self.delete, methods=["DELETE"]),
                Route("/admin/users/{name}/reset", self.reset, methods=["POST"]),
                Route("/admin/usage", self.usage_report, methods=["GET"]),
                Route("/admin/hosts", self.add_host, methods=["POST"]),
                Route("/admin/hosts", self.list_hosts, methods=["GET"]),
                Route("/admin/hosts/{host}", self.remove_host, methods=["DELETE"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # With "app" in the scope, Starlette raises HTTPException for 404/405 instead of
        # answering in plain text, so every answer is OpenAI-shaped.
        scope = {**scope, "app": self}
        try:
            self.authorize(scope)
            await self.router(scope, receive, send)
        except HTTPException as exc:
            call = f"{scope['method']} {scope['path']}"
            problem: GatewayError = NotFound(f"no admin call {call}; see the README for them")
            if exc.status_code == 405:
                problem = MethodNotAllowed(f"{call} is not an admin call; see the README")
            await answer(scope, receive, send, problem)
        except GatewayError as err:
            await answer(scope, receive, send, err)
        except Exception as exc:
            logger.warning("admin: {} {} failed: {}", scope["method"], scope["path"], exc)
            message = "the user store is unreachable or failed; retry shortly"
            await answer(scope, receive, send, ServiceUnavailable(message))

    def authorize(self, scope: Scope) -> None:
        key = find_key(scope["headers"])
        if key is None and cookie(scope["headers"]) is not None:
            if self.sessions.authorizes(scope["headers"]):
                return
            raise Unauthorized(
                "the dashboard session expired or its X-CSRF-Token is missing: sign in again "
                "at /admin/ui"
            )
        self.admin.check(scope["headers"])

    async def create(self, request: Request) -> Response:
        fields = self.checked(await body_of(request), partial=False)
        try:
            user, key = await accounts.create(self.store, fields)
        except accounts.NameTaken as exc:
            raise Conflict(f"a user named {exc.name!r} exists already", param="name") from None
        logger.info("admin: created user {}", user.name)
        return json({**user.public(), "key": key}, status=201)

    async def list(self, request: Request) -> Response:
        users = await self.store.users()
        return json({"object": "list", "data": [u.public() for u in users]})

    async def show(self, request: Request) -> Response:
        user = await self.find(request)
        since = since_of(request)
        await self.usage.flush()
        rows = await self.store.usage(since, user.name)
        return json({**user.public(), "usage": usage_report(since, rows)})

    async def change(self, request: Request) -> Response:
        user = await self.find(request)
        changed = dataclasses.replace(user, **self.checked(await body_of(request), partial=True))
        await self.swap(user, changed)
        logger.info("admin: changed user {}", user.name)
        return json(changed.public())

    async def reset(self, request: Request) -> Response:
        user = await self.find(request)
        key = new_key()
        changed = accounts.with_key(user, key)
        await self.swap(user, changed)
        logger.info("admin: reset the key of user {}", user.name)
        return json({**changed.public(), "key": key})

    async def delete(self, request: Request) -> Response:
        name = request.path_params["name"]
        if await self.store.delete(name) is None:
            raise NotFound(f"no user named {name!r}")
        logger.info("admin: deleted user {}", name)
        return json({"name": name, "deleted": True})

    async def usage_report(self, request: Request) -> Response:
        since = since_of(request)
        name = request.query_params.get("user")
        await self.usage.flush()
        return json(usage_report(since, await self.store.usage(since, name)))

    async def add_host(self, request: Request) -> Response:
        try:
            host = checked_host(await body_of(request), self.hosts.configured)
        except HostFieldError as exc:
            raise InvalidField(exc.message, param=exc.field) from None
        known = {h.host for h in await self.store.hosts()}
        await self.store.set_host(host)
        await self.hosts.reload()  # usable here before the answer; elsewhere when announced
        logger.info(
            "admin: {} runtime host {}", "replaced" if host.host in known else "added", host.host
        )
        return json(host.public(), status=200 if host.host in known else 201)

    async def list_hosts(self, request: Request) -> Response:
        hosts = await self.store.hosts()
        return json({"object": "list", "data": [h.public() for h in hosts]})

    async def remove_host(self, request: Request) -> Response:
        host = request.path_params["host"].lower()
        if not await self.store.remove_host(host):
            raise NotFound(f"no runtime host {host!r}; GET /admin/hosts lists them")
        await self.hosts.reload()
        logger.info("admin: removed runtime host {}", host)
        return json({"host": host, "deleted": True})

    async def find(self, request: Request) -> User:
        name = request.path_params["name"]
        try:
            return await accounts.find(self.store, name)
        except accounts.NoSuchUser:
            raise NotFound(f"no user named {name!r}; GET /admin/users lists them") from None

    async def swap(self, old: User, new: User) -> None:
        try:
            await accounts.replace(self.store, old, new)
        except accounts.NoSuchUser:
            raise NotFound(f"no user named {old.name!r} (deleted meanwhile)") from None
        except accounts.ChangedMeanwhile:
            raise Conflict(
                f"user {old.name!r} was changed meanwhile; read it again and retry"
            ) from None

    def checked(self, data: dict[str, Any], *, partial: bool) -> dict[str, Any]:
        try:
            fields = check_fields(data, partial=partial)
        except FieldError as exc:
            raise InvalidField(exc.message, param=exc.field) from None
        for route in fields.get("routes", ()):
            if route not in self.routes:
                raise InvalidField(
                    f"{route!r} is not a route prefix of this gateway; it has: "
                    + ", ".join(self.routes),
                    param="routes",
                )
        return fields


async def body_of(request: Request) -> dict[str, Any]:
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise InvalidField(f"the body is larger than {MAX_BODY} bytes", param="body")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidField("the body is not JSON; send a JSON object", param="body") from None
    if not isinstance(data, dict):
        raise InvalidField("the body must be a JSON object", param="body")
    return data


def since_of(request: Request) -> str:
    value = request.query_params.get("since")
    try:
        return accounts.usage_since(None if value is None else value[:10])
    except ValueError:
        raise InvalidField(f"since={value!r}: expected a date YYYY-MM-DD", param="since") from None


def json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


async def answer(scope: Scope, receive: Receive, send: Send, err: GatewayError) -> None:
    response = Response(err.body(), err.status, media_type="application/json")
    await response(scope, receive, send)
