"""The plug-in contract: what a feature adds to the gateway.

A feature is one function, ``install(settings, shared) -> Contribution``. It
builds its parts from the settings and returns them; it never sees the app.
`app.py` holds the one ordered list of features and folds their contributions:

- ``hooks`` run around the upstream call: every ``before`` in list order, every
  ``after`` in reverse (only for hooks whose ``before`` completed); a ``before`` may
  set ``ex.answer`` (a `LocalAnswer`, built ahead of time) to be sent in place of the
  upstream's once every ``before`` ran: no planner, retrier or upstream call then;
- ``resources`` are entered by the lifespan in list order, exited in reverse;
- ``wrap_planner`` puts a planner in front of the one built so far (the planner
  turns the exchange into the upstream request, anew at every attempt);
- ``retrier`` calls an attempt as often as it judges right (at most one feature
  gives one); ``wrap_retrier`` puts an outer loop around the retrier built so far
  (fallbacks: each step calls the retrier anew for another model);
- ``mounts`` are ASGI apps served under a path prefix of their own (``/admin``);
- ``probes`` are what `/readyz` checks (a store, a writer thread);
- ``reporters`` hear of every request as it starts and once it is over, and of every
  request refused before it matched a route (metrics): plain calls, cheaper than a hook.

`Shared.signals` is where a feature counts what the operator should see (cache hits,
storage errors) or offers a reading (a queue depth); see `signals.py`.
- ``aliases`` turn a request into another one for a mount (a foreign URL form of it,
  with the body it stands for); a request an alias takes is never forwarded.

What a feature keeps about one request lives on the exchange under a typed
`StateKey` (``ex.set(KEY, value)`` / ``ex.get(KEY)``), never under a bare string.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .errors import GatewayError
from .exchange import Exchange, Hook, StateKey
from .keys import KeyRing
from .providers.runtime_hosts import RuntimeHosts
from .redact import Redactor
from .settings import Settings
from .signals import Signals
from .types import ASGIApp, Scope
from .upstream import UpstreamRequest, UpstreamResponse

__all__ = [
    "Alias",
    "Attempt",
    "Contribution",
    "Feature",
    "Hook",
    "Planner",
    "Probe",
    "Reporter",
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
    redactor that masks every real key in what leaves the gateway; the signals every
    feature may count on for the metrics; the hosts added at run time (kept current by the
    users feature, read by the providers feature)."""

    rings: Mapping[str, KeyRing]
    redactor: Redactor
    signals: Signals = field(default_factory=Signals)
    hosts: RuntimeHosts = field(default_factory=RuntimeHosts)


@dataclass(frozen=True, slots=True)
class Probe:
    """Something this instance depends on, checked by `/readyz`: `check` returns None when
    it works, else a short reason it does not (never a secret)."""

    name: str
    check: Callable[[], Awaitable[str | None]]


class Reporter(Protocol):
    """Hears of every request as it starts (before the first hook) and once it is over
    (after the hooks' `after`); must be quick: it runs on every request, and no `await`."""

    def started(self, ex: Exchange) -> None: ...

    def finished(self, ex: Exchange) -> None: ...

    def refused(self, err: GatewayError) -> None:
        """A request answered with `err` before it matched a route or its body was read."""


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one feature adds; every part is optional."""

    hooks: tuple[Hook, ...] = ()
    resources: tuple[Resource, ...] = ()
    wrap_planner: Callable[[Planner], Planner] | None = None
    retrier: Retrier | None = None
    wrap_retrier: Callable[[Retrier], Retrier] | None = None
    mounts: tuple[tuple[str, ASGIApp], ...] = ()
    probes: tuple[Probe, ...] = ()
    reporters: tuple[Reporter, ...] = ()
    aliases: tuple[Alias, ...] = ()


NOTHING = Contribution()


async def call_once(ex: Exchange, attempt: Attempt) -> UpstreamResponse:
    """The retrier of a pipeline without one: a single attempt."""
    return await attempt()


Feature = Callable[[Settings, Shared], Contribution]
