"""The plug-in contract: what a feature adds to the gateway.

A feature is one function, ``install(settings, shared) -> Contribution``. It
builds its parts from the settings and returns them; it never sees the app.
`app.py` holds the one ordered list of features and folds their contributions:

- ``hooks`` run around the upstream call: every ``before`` in list order, every
  ``after`` in reverse (only for hooks whose ``before`` completed);
- ``resources`` are entered by the lifespan in list order, exited in reverse;
- ``wrap_planner`` puts a planner in front of the one built so far (the planner
  turns the exchange into the upstream request, anew at every attempt);
- ``retrier`` calls an attempt as often as it judges right (at most one feature
  gives one); ``wrap_retrier`` puts an outer loop around the retrier built so far
  (fallbacks: each step calls the retrier anew for another model);
- ``mounts`` are ASGI apps served under a path prefix of their own (``/admin``);
- ``aliases`` turn a request into another one for a mount (a foreign URL form of it,
  with the body it stands for); a request an alias takes is never forwarded.

What a feature keeps about one request lives on the exchange under a typed
`StateKey` (``ex.set(KEY, value)`` / ``ex.get(KEY)``), never under a bare string.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from .exchange import Exchange, Hook, StateKey
from .keys import KeyRing
from .redact import Redactor
from .settings import Settings
from .types import ASGIApp, Scope
from .upstream import UpstreamRequest, UpstreamResponse

__all__ = [
    "Alias",
    "Attempt",
    "Contribution",
    "Feature",
    "Hook",
    "Planner",
    "Resource",
    "Retrier",
    "Shared",
    "StateKey",
]

Planner = Callable[[Exchange], UpstreamRequest]
Attempt = Callable[[], Awaitable[UpstreamResponse]]
# Calls the attempt (plan + send) as often as it judges right; see resilience/retrier.py.
Retrier = Callable[[Exchange, Attempt], Awaitable[UpstreamResponse]]
Resource = contextlib.AbstractAsyncContextManager[object]
Alias = Callable[[Scope], "tuple[Scope, bytes | None] | None"]


@dataclass(frozen=True, slots=True)
class Shared:
    """What the app builds once for every feature: each route's ring of real keys, and the
    redactor that masks every real key in what leaves the gateway."""

    rings: Mapping[str, KeyRing]
    redactor: Redactor


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one feature adds; every part is optional."""

    hooks: tuple[Hook, ...] = ()
    resources: tuple[Resource, ...] = ()
    wrap_planner: Callable[[Planner], Planner] | None = None
    retrier: Retrier | None = None
    wrap_retrier: Callable[[Retrier], Retrier] | None = None
    mounts: tuple[tuple[str, ASGIApp], ...] = ()
    aliases: tuple[Alias, ...] = ()


NOTHING = Contribution()


async def call_once(ex: Exchange, attempt: Attempt) -> UpstreamResponse:
    """The retrier of a pipeline without one: a single attempt."""
    return await attempt()


Feature = Callable[[Settings, Shared], Contribution]
