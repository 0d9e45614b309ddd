"""FALLBACKS in the pipeline: an outer loop around the retrier, and a planner that asks
the upstream below the providers for the fallback model.

Listed after the retries (its loop wraps the retrier) and before the providers (its
planner is the one they fall back on for models MODEL_ROUTES leaves to the route's own
upstream). Nothing is installed when FALLBACKS is empty.
"""

from __future__ import annotations

import dataclasses

import orjson

from ..exchange import MODEL_OVERRIDE, Exchange
from ..pipeline import NOTHING, Contribution, Planner, Retrier, Shared
from ..settings import Settings
from ..upstream import UpstreamRequest
from .walk import CHAINED, FallbackWalk


def fallback_planner(below: Planner) -> Planner:
    """The request below, for the override model when there is one."""

    def plan(ex: Exchange) -> UpstreamRequest:
        request = below(ex)
        if not ex.get(CHAINED):
            return request
        # Uncompressed: the walk reads a 400's body to see whether the input was too long.
        headers = [(n, v) for n, v in request.headers if n != b"accept-encoding"]
        headers.append((b"accept-encoding", b"identity"))
        model = ex.get(MODEL_OVERRIDE)
        body = request.body
        if model is not None:
            body = orjson.dumps({**(ex.json() or {}), "model": model})
        return dataclasses.replace(request, headers=headers, body=body)

    return plan


def install(settings: Settings, shared: Shared) -> Contribution:
    """The walk along each model's chain, when FALLBACKS names any."""
    fallbacks = settings.fallbacks
    if not fallbacks.active:
        return NOTHING
    read_timeout = settings.resilience.idle_timeout or settings.timeout

    def wrap(retrier: Retrier) -> Retrier:
        return FallbackWalk(retrier, fallbacks.chains, shared.rings, read_timeout)

    return Contribution(wrap_retrier=wrap, wrap_planner=fallback_planner)
