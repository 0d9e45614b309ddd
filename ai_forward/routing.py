"""Longest-prefix route matching."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from .settings import Route
from .target import RequestTarget


class Matched(NamedTuple):
    """The route that serves a request, and the request's path after the route prefix."""

    route: Route
    path: str  # canonical: what rules after routing match on
    raw: str  # as the client sent it: what goes upstream


class RouteTable:
    """Maps a request target to its route and the path to send upstream.

    The longest matching prefix wins; `/` may be one route among others.
    A prefix matches whole decoded path segments (`/ai` does not match `/air`).
    """

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = sorted(routes, key=lambda r: len(r.prefix), reverse=True)
        self._segments = [
            (route, tuple(route.prefix.strip("/").split("/")) if route.prefix != "/" else ())
            for route in self._routes
        ]

    @property
    def routes(self) -> list[Route]:
        return list(self._routes)

    def match(self, target: RequestTarget) -> Matched | None:
        segments = target.segments
        for route, prefix in self._segments:
            if not prefix:
                return Matched(route, target.path, target.raw)
            n = len(prefix)
            if segments[:n] == prefix:
                if n == len(segments):
                    return Matched(route, "/", "/")
                return Matched(
                    route,
                    "/" + "/".join(segments[n:]),
                    "/" + "/".join(target.raw_segments[n:]),
                )
        return None
