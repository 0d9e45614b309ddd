"""create_app(settings): the ASGI application, and the one ordered list of its features.

FEATURES below is the only place the order is written. Each feature returns its
contribution (see `pipeline.py`); `fold` puts them together in that order:

 1. metrics      `ops/`            counts every request (a reporter, not a hook); `/metrics`
 2. dashboard    `dashboard/`      `/admin/ui`; while it is open, counts what every hook refused
 3. client IP    `clientip.py`     the client's address (trusted proxies), IP lists (403)
 4. key swap     `keyhook.py`      forward key (or open access) → the route's real key
 5. levels       `compat/`         openai-forward's levels: the key's level picks keys, models
 6. retries      `resilience/`     the retrier: retries, key rotation on 401/429
 7. fallbacks    `fallbacks/`      the next model of a chain when one fails (wraps the retrier)
 8. users        `users/`          issued keys → a user and its limits; `/admin`
 9. admin URLs   `compat/`         ai-proxy-cloudflare's /<TOKEN>/register/... as /admin calls
10. providers    `providers/`      model → provider; its planner wraps the ones below
11. limits       `ratelimit/`      request and token limits, stream pacing
12. budgets      `budgets/`        a user's spending budget: worst case charged, then settled
13. chat log     `chatlog/`        records of each chat exchange
14. cache        `cache/`          answers repeated requests locally; last, so limits count hits

The gateway itself answers `/healthz` (alive) and `/readyz` (the features' probes).

Each hook's `before` runs in this order, each `after` in reverse. The lifespan
enters the upstream session, the access log, the features' resources in this
order, then the forwarder's body readers; it exits them in reverse.
"""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import orjson
from loguru import logger

from . import __version__, clientip, keyhook
from .accesslog import AccessLog
from .budgets import hook as budgets
from .cache import hook as cache
from .chatlog import hook as chatlog
from .compat import cloudflare as compat_admin
from .compat import levels as compat_levels
from .cors import CORS
from .dashboard import hook as dashboard
from .exchange import Hook
from .fallbacks import hook as fallbacks
from .forward import Forwarder
from .keys import KeyRing
from .ops import banner
from .ops import hook as ops
from .ops.readiness import check_all, send_readiness
from .pipeline import (
    Alias,
    Feature,
    Planner,
    Probe,
    Reporter,
    Resource,
    Retrier,
    Shared,
    call_once,
)
from .plan import plan_passthrough
from .providers import hook as providers
from .ratelimit import hook as ratelimit
from .redact import Redactor
from .resilience import retrier as resilience
from .routing import RouteTable
from .settings import Settings
from .types import ASGIApp, Message, Receive, Scope, Send
from .upstream import Upstream
from .users import hook as users

FEATURES: tuple[Feature, ...] = (
    ops.install,
    dashboard.install,  # early: its after-hook sees every refusal of the hooks below
    clientip.install,
    keyhook.install,
    compat_levels.install,
    resilience.install,
    fallbacks.install,
    users.install,
    compat_admin.install,
    providers.install,
    ratelimit.install,
    budgets.install,
    chatlog.install,
    cache.install,
)
GC_THRESHOLD = 20_000
_SLASHES = re.compile(r"/{2,}")
_HEALTH = orjson.dumps({"status": "ok", "version": __version__})


class Gateway:
    """The top-level ASGI app: lifespan, `/healthz`, the features' mounted apps, then
    forwarding."""

    def __init__(
        self,
        settings: Settings,
        on_startup_failure: Callable[[str], None] | None = None,
        log: AccessLog | None = None,
    ) -> None:
        self.settings = settings
        self.on_startup_failure = on_startup_failure
        self.table = RouteTable(settings.routes)
        self._upstream: Upstream | None = None
        rings = {route.prefix: KeyRing(route.keys) for route in settings.routes if route.keys}
        # Masks every real key in upstream answers and chat logs; built once, shared.
        self.redactor = Redactor.for_settings(settings)
        access_log = log or (AccessLog() if settings.access_log else None)
        pipeline = fold(FEATURES, settings, Shared(rings, self.redactor))
        self.probes = pipeline.probes
        # Entered by the lifespan in order (exited in reverse), after the upstream session.
        self.resources: list[Resource] = [
            *((access_log,) if access_log else ()),
            *pipeline.resources,
        ]
        # The longest prefix first: `/admin/cache` before `/admin`.
        self.mounts = tuple(sorted(pipeline.mounts, key=lambda m: len(m[0]), reverse=True))
        self.aliases = pipeline.aliases
        self.forwarder = Forwarder(
            self.table,
            pipeline.hooks,
            self.upstream,
            max_body_size=settings.max_body_size,
            body_timeout=settings.body_timeout,
            access_log=access_log,
            planner=pipeline.planner,
            retrier=pipeline.retrier,
            reporters=pipeline.reporters,
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
            checks = await check_all(self.probes)
            logger.info("{}", banner.describe(self.settings, __version__, checks))
            for name, result in checks.items():
                if result != "ok":
                    logger.error("not ready at start-up: {}: {}", name, result)
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
            if "//" in path:  # `//admin/users` is the admin API too, never forwarded
                path = collapse_slashes(path)
            if path == "/healthz":
                await send_health(send)
            elif path == "/readyz":
                await send_readiness(send, self.probes)
            else:
                for alias in self.aliases:
                    found = alias(scope)
                    if found is not None:
                        scope, body = found
                        receive = replay(body) if body is not None else receive
                        path = scope["path"]
                        break
                for prefix, mounted in self.mounts:
                    if path == prefix or path.startswith(prefix + "/"):
                        if path != scope["path"]:
                            scope = {**scope, "path": path}
                        await mounted(scope, receive, send)
                        return
                await self.forwarder(scope, receive, send)
        elif kind == "lifespan":
            await serve_lifespan(
                self.lifespan, receive, send, self.on_startup_failure, self.redactor
            )
        else:
            await receive()
            await send({"type": "websocket.close", "code": 1008, "reason": "not forwarded"})


@dataclass(frozen=True, slots=True)
class Pipeline:
    """The features' contributions, folded in order."""

    hooks: tuple[Hook, ...]
    resources: tuple[Resource, ...]
    planner: Planner
    retrier: Retrier | None
    mounts: tuple[tuple[str, ASGIApp], ...]
    probes: tuple[Probe, ...] = ()
    reporters: tuple[Reporter, ...] = ()
    aliases: tuple[Alias, ...] = ()


def fold(features: Sequence[Feature], settings: Settings, shared: Shared) -> Pipeline:
    """Hooks, resources and mounts in feature order; each planner (and retrier wrapper)
    wraps the ones before."""
    hooks: list[Hook] = []
    resources: list[Resource] = []
    mounts: list[tuple[str, ASGIApp]] = []
    probes: list[Probe] = []
    reporters: list[Reporter] = []
    aliases: list[Alias] = []
    planner: Planner = plan_passthrough
    retrier: Retrier | None = None
    for install in features:
        part = install(settings, shared)
        hooks += part.hooks
        resources += part.resources
        mounts += part.mounts
        probes += part.probes
        reporters += part.reporters
        aliases += part.aliases
        if part.wrap_planner is not None:
            planner = part.wrap_planner(planner)
        if part.retrier is not None:
            if retrier is not None:
                raise RuntimeError("two features give a retrier; the pipeline takes one")
            retrier = part.retrier
        if part.wrap_retrier is not None:
            retrier = part.wrap_retrier(retrier or call_once)
    return Pipeline(
        tuple(hooks),
        tuple(resources),
        planner,
        retrier,
        tuple(mounts),
        probes=tuple(probes),
        reporters=tuple(reporters),
        aliases=tuple(aliases),
    )


def create_app(
    settings: Settings | None = None,
    on_startup_failure: Callable[[str], None] | None = None,
    log: AccessLog | None = None,
) -> ASGIApp:
    """The gateway as an ASGI app; `settings` default to the environment.

    `on_startup_failure`, when given, receives the one-line reason start-up failed
    (the server is then only told that it did); else the server shows that reason.
    """
    settings = settings or Settings.from_env()
    app: ASGIApp = Gateway(settings, on_startup_failure, log)
    if settings.cors_origins:
        app = CORS(app, settings.cors_origins)
    return app


def collapse_slashes(path: str) -> str:
    """`path` with every run of `/` made one, as the forwarder matches routes."""
    return _SLASHES.sub("/", path)


def replay(body: bytes) -> Receive:
    """A receive that gives `body` once, then waits for the disconnect."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


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
