"""What features tell the operator about themselves, for the metrics to show.

The app builds one `Signals` per process and hands it to every feature (`Shared`).
A feature counts events on it (a cache hit, a storage error) or lets a reading be
taken at scrape time (the chat-log queue depth). Counting is a dict update: cheap
enough for the request path, and free of any metrics library.
"""

from __future__ import annotations

from collections.abc import Callable


class Signals:
    """Event counts by (event, label), and readings taken when the metrics are scraped."""

    __slots__ = ("counts", "readings")

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self.readings: dict[str, Callable[[], float]] = {}

    def count(self, event: str, label: str = "", n: int = 1) -> None:
        """Count `n` of `event` (e.g. ``count("cache", "hit")``, ``count("storage_error",
        "redis")``); `label` must come from a small fixed set."""
        key = (event, label)
        self.counts[key] = self.counts.get(key, 0) + n

    def reading(self, name: str, read: Callable[[], float]) -> None:
        """Let the metrics show ``aifd_<name>`` as `read()` at each scrape; a name ending in
        ``_total`` is a counter, any other a gauge."""
        self.readings[name] = read
