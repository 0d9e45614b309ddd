"""`GET /v1/models`: the route upstream's own list, plus the models of the configured providers."""

from __future__ import annotations

import asyncio
import dataclasses
from fnmatch import fnmatchcase
from typing import Any

import aiohttp
import orjson
from loguru import logger

from ..errors import GatewayError
from ..exchange import Exchange
from ..pipeline import Planner
from ..upstream import Upstream, UpstreamRequest, UpstreamResponse
from .base import JSON, loads_object
from .reply import Reply, read_all
from .router import Router


class ModelListing:
    """`skip`: route prefixes whose own upstream is not asked (one nobody configured, when
    only providers such as Azure are: the client's key must not go there)."""

    def __init__(self, router: Router, skip: frozenset[str] = frozenset()) -> None:
        self.router = router
        self.skip = skip

    @property
    def active(self) -> bool:
        return bool(self.router.active)

    def local(self) -> list[JSON]:
        """The models answered locally: per provider in MODEL_ROUTES, and Azure's mapped names."""
        s = self.router.settings
        names: list[tuple[str, str]] = []
        active = self.router.active
        if "anthropic" in active:
            names += [(m, "anthropic") for m in s.anthropic_models]
        if "gemini" in active:
            names += [(m, "gemini") for m in s.gemini_models]
        if "azure" in active:
            names += [(model, "azure") for model, _ in s.azure_model_mapper]
            names += [(d, "azure") for r in s.azure for d in r.deployments]
        return [{"id": n, "object": "model", "created": 0, "owned_by": o} for n, o in names]

    def requests(self, ex: Exchange, below: Planner) -> list[UpstreamRequest]:
        own = below(ex)
        identity = [(n, v) for n, v in own.headers if n != b"accept-encoding"]
        requests = []
        if ex.route.prefix not in self.skip:
            requests.append(
                dataclasses.replace(own, headers=[*identity, (b"accept-encoding", b"identity")])
            )
        for name in sorted(self.router.active & set(self.router.routes)):
            route = self.router.routes[name]
            key = self.router.key(ex, self.router.route_rings.get(route.prefix))
            headers = [(b"accept-encoding", b"identity")]
            if key:
                headers.append((b"authorization", b"Bearer " + key.encode()))
            requests.append(
                UpstreamRequest("GET", route.origin.url("/v1/models"), headers, b"", name)
            )
        return requests

    def plan(self, ex: Exchange, below: Planner) -> UpstreamRequest:
        requests = self.requests(ex, below)

        async def compose(upstream: Upstream) -> UpstreamResponse:
            lists = await asyncio.gather(*(fetch(upstream, r) for r in requests))
            seen: set[Any] = set()
            data: list[Any] = []
            allowed = ex.principal.models if ex.principal else ()
            for entry in [m for found in lists for m in found] + self.local():
                if not isinstance(entry, dict) or not may_use(allowed, entry.get("id")):
                    continue
                if entry.get("id") not in seen:
                    seen.add(entry.get("id"))
                    data.append(entry)
            return Reply.json(200, orjson.dumps({"object": "list", "data": data}))

        return dataclasses.replace(requests[0] if requests else below(ex), compose=compose)


def may_use(allowed: tuple[str, ...], model: Any) -> bool:
    """Whether an issued key limited to `allowed` models (empty: all) may use `model`."""
    if not allowed:
        return True
    return isinstance(model, str) and any(fnmatchcase(model, p) for p in allowed)


async def fetch(upstream: Upstream, request: UpstreamRequest) -> list[Any]:
    """The `data` of an upstream's model list; empty when it cannot be had."""
    try:
        response = await upstream.send(request)
    except GatewayError as err:
        logger.warning("models of {}: {}", request.route, err.message)
        return []
    try:
        raw = await read_all(response, 8 * 1024 * 1024) if response.status == 200 else b""
    except (aiohttp.ClientError, TimeoutError) as exc:
        response.close()
        logger.warning("models of {}: {}", request.route, type(exc).__name__)
        return []
    response.release()
    body = loads_object(raw)
    if body is None or not isinstance(body.get("data"), list):
        logger.warning("models of {}: status {}, no list", request.route, response.status)
        return []
    data: list[Any] = body["data"]
    return data
