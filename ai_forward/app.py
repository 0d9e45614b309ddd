"""create_app(settings): the ASGI application and the order of its hooks.

Hook order, written down once: keys → users → providers → limits → chat log;
each `before` in this order, each `after` in reverse. Each feature plugs in
through one `install_*(gateway)` call below, in that order.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Callable

import orjson
from loguru import logger

from . import __version__
from .accesslog import AccessLog
from .auth import KeyHook, KeyRing
from .chatlog import install_chatlog
from .cors import CORS
from .exchange import Hook
from .forward import Forwarder, Planner, Retrier, plan_passthrough
from .providers.hook import install_providers
from .ratelimit import install_limits
from .redact import Redactor
from .retry import install_resilience
from .routing import RouteTable
from .settings import Settings
from .types import ASGIApp, Receive, Scope, Send
from .upstream import Upstream
from .users_hook import install_users

GC_THRESHOLD = 20_000
_HEALTH = orjson.dumps({"status": "ok", "version": __version__})


class Gateway:
    """The top-level ASGI app: lifespan, `/healthz`, then forwarding."""

    def __init__(
        self, settings: Settings, on_startup_failure: Callable[[str], None] | None = None
    ) -> None:
        self.settings = settings
        self.on_startup_failure = on_startup_failure
        self.table = RouteTable(settings.routes)
        self._upstream: Upstream | None = None
        # Masks every real key in upstream answers and chat logs; built once, shared.
        self.redactor = Redactor.for_settings(settings)
        self.rings = {route.prefix: KeyRing(route.keys) for route in settings.routes if route.keys}
        # Async context managers entered by the lifespan, in order (exited in reverse).
        self.resources: list[contextlib.AbstractAsyncContextManager[object]] = []
        access_log = AccessLog() if settings.access_log else None
        if access_log is not None:
            self.resources.append(access_log)
        # The order of hooks: `before` runs top to bottom, `after` bottom to top.
        self.hooks: list[Hook] = [KeyHook(settings.forward_keys, self.rings)]
        self.planner: Planner = plan_passthrough
        # The /admin API, when a feature provides one (users: set by install_users).
        self.admin: ASGIApp | None = None
        self.retrier: Retrier | None = None
        install_resilience(self)
        install_users(self)
        install_providers(self)
        install_limits(self)
        install_chatlog(self)
        self.forwarder = Forwarder(
            self.table,
            self.hooks,
            self.upstream,
            max_body_size=settings.max_body_size,
            body_timeout=settings.body_timeout,
            access_log=access_log,
            planner=self.planner,
            retrier=self.retrier,
        )
        self.resources.append(self.forwarder.bodies)

    def upstream(self) -> Upstream:
        if self._upstream is None:
            raise RuntimeError("the app was called before its lifespan started")
        return self._upstream

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            self._upstream = await stack.enter_async_context(Upstream(self.settings, self.redactor))
            for resource in self.resources:
                await stack.enter_async_context(resource)
            logger.info(
                "ai-forward {} routes: {}",
                __version__,
                ", ".join(f"{r.prefix} -> {r.base_url}" for r in self.table.routes),
            )
            # Everything built so far lives as long as the process: keep it out of the
            # collector's scans, and collect the young generation less often (the request
            # path allocates many short-lived objects and frees nearly all of them).
            gc.freeze()
            gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
            try:
                yield
            finally:
                self._upstream = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path == "/healthz":
                await send_health(send)
            elif self.admin is not None and (path == "/admin" or path.startswith("/admin/")):
                await self.admin(scope, receive, send)
            else:
                await self.forwarder(scope, receive, send)
        elif kind == "lifespan":
            await serve_lifespan(
                self.lifespan, receive, send, self.on_startup_failure, self.redactor
            )
        else:
            await receive()
            await send({"type": "websocket.close", "code": 1008, "reason": "not forwarded"})


def create_app(
    settings: Settings | None = None, on_startup_failure: Callable[[str], None] | None = None
) -> ASGIApp:
    """The gateway as an ASGI app; `settings` default to the environment.

    `on_startup_failure`, when given, receives the one-line reason start-up failed
    (the server is then only told that it did); else the server shows that reason.
    """
    settings = settings or Settings.from_env()
    app: ASGIApp = Gateway(settings, on_startup_failure)
    if settings.cors_origins:
        app = CORS(app, settings.cors_origins)
    return app


async def send_health(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": _HEALTH})


async def serve_lifespan(
    lifespan: Callable[[], contextlib.AbstractAsyncContextManager[None]],
    receive: Receive,
    send: Send,
    on_failure: Callable[[str], None] | None = None,
    redactor: Redactor | None = None,
) -> None:
    """Run `lifespan` for the server; a start-up failure is one line, never a traceback.

    A traceback would show the settings (real keys included) held by the frames.
    """
    message = await receive()
    assert message["type"] == "lifespan.startup"
    context = lifespan()
    try:
        await context.__aenter__()
    except Exception as exc:
        reason = startup_reason(exc)
        if redactor is not None:
            reason = redactor.redact_text(reason)
        if on_failure is not None:
            on_failure(reason)
            reason = ""  # already reported: the server need not repeat it
        await send({"type": "lifespan.startup.failed", "message": reason})
        return
    await send({"type": "lifespan.startup.complete"})
    message = await receive()
    try:
        await context.__aexit__(None, None, None)
    except Exception as exc:
        await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
        return
    await send({"type": "lifespan.shutdown.complete"})


def startup_reason(exc: BaseException) -> str:
    """Why start-up failed, on one line."""
    text = " ".join(str(exc).split())
    return f"start-up failed: {text}" if text else f"start-up failed ({type(exc).__name__})"
