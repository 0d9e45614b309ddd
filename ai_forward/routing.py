"""Longest-prefix route matching."""

from __future__ import annotations

from collections.abc import Iterable

from .settings import Route


class RouteTable:
    """Maps a request path to its route and the path to send upstream.

    The longest matching prefix wins; `/` may be one route among others.
    A prefix matches only at a path-segment boundary (`/ai` does not match `/air`).
    """

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = sorted(routes, key=lambda r: len(r.prefix), reverse=True)

    @property
    def routes(self) -> list[Route]:
        return list(self._routes)

    def match(self, path: str) -> tuple[Route, str] | None:
        for route in self._routes:
            prefix = route.prefix
            if prefix == "/":
                return route, path
            if path == prefix:
                return route, "/"
            if path.startswith(prefix) and path[len(prefix)] == "/":
                return route, path[len(prefix) :]
        return None
