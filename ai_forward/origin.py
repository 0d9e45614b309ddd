"""Where a configured upstream lives, and the one way to build a URL to it."""

from __future__ import annotations

from yarl import URL

from .target import check_path

URLS_KEPT = 256


class Origin:
    """A configured base URL split once at start-up: scheme, authority and base path.

    `url` is how every planner (passthrough, providers, X-Host-Final, fan-out,
    model listing) makes an upstream URL: the scheme and authority are always the
    configured ones, the path is the base path plus a checked origin-form path
    sent as it is (percent-encoding intact), the query string is passed unchanged.
    """

    __slots__ = ("_urls", "authority", "base_path", "scheme", "text")

    def __init__(self, base_url: str) -> None:
        parsed = URL(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.raw_host:
            raise ValueError(f"{base_url!r} is not an http:// or https:// URL with a host")
        self.scheme = parsed.scheme
        self.authority = parsed.raw_authority
        self.base_path = parsed.raw_path.rstrip("/")
        self.text = base_url.rstrip("/")
        # The URLs built lately: most requests ask for one of a few paths, and a URL is
        # immutable. Bounded: emptied when full.
        self._urls: dict[tuple[str, str], URL] = {}

    def url(self, path: str, query: str = "") -> URL:
        """The configured origin + base path + `path` (which must start with '/')."""
        built = self._urls.get((path, query))
        if built is None:
            built = URL.build(
                scheme=self.scheme,
                authority=self.authority,
                path=self.base_path + check_path(path),
                query_string=query,
                encoded=True,
            )
            if len(self._urls) >= URLS_KEPT:
                self._urls.clear()
            self._urls[(path, query)] = built
        return built

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Origin({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Origin) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)
