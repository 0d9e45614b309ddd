"""What the metrics count, kept in plain dicts on the request path.

A finished request costs a handful of dict updates and three bisects (about two
microseconds); the Prometheus families are built from these dicts only when
`/metrics` is scraped (`exposition.py`). Every label value comes from a bounded
set: route names, provider names, a fixed list of endpoints, status codes, key
kinds, and at most MAX_MODELS models and MAX_USERS users (the rest: "other").
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from ..errors import BodyTooLarge, Forbidden, GatewayError, RateLimited, Unauthorized
from ..exchange import Exchange, StateKey
from ..observe.fields import usage_counts
from ..providers.hook import DECISION, SingleModel
from ..signals import Signals

# Counters by family name; each key is the tuple of its label values.
Counts = dict[tuple[str, ...], float]
LABELS: dict[str, tuple[str, ...]] = {
    "requests": ("route", "provider", "model", "endpoint", "status", "key_kind"),
    "refusals": ("reason",),
    "upstream_attempts": ("route",),
    "upstream_retries": ("route", "cause"),
    "tokens": ("model", "user", "direction"),
}
# Seconds. The gateway's own time is usually well under a millisecond.
BUCKETS: dict[str, tuple[float, ...]] = {
    "upstream_first_byte_seconds": (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    "request_duration_seconds": (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    "gateway_added_seconds": (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1),
}
ENDPOINTS = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/responses",
    "/v1/embeddings",
    "/v1/models",
    "/v1/moderations",
    "/v1/images",
    "/v1/audio",
    "/v1/files",
    "/v1/batches",
    "/v1/fine_tuning",
    "/v1/assistants",
    "/v1/threads",
    "/v1/vector_stores",
    "/v1/uploads",
    "/v1/messages",
)
TOKEN_ENDPOINTS = frozenset(
    ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/embeddings")
)
MAX_MODELS = 100
MAX_USERS = 1000
OTHER = "other"
_STREAM = StateKey[bool]("metrics: a stream in flight")


def endpoint_of(path: str) -> str:
    """The path as one of ENDPOINTS (with or without `/v1`), else "other"."""
    if not path.startswith("/v1/"):
        path = "/v1" + path
    for endpoint in ENDPOINTS:
        if path == endpoint or path.startswith(endpoint + "/"):
            return endpoint
    return OTHER


def refusal_reason(err: GatewayError) -> str | None:
    """Why the gateway refused a request, or None when the error is the upstream's."""
    if err.type == "upstream_error":
        return None
    if isinstance(err, Unauthorized):
        return "auth"
    if isinstance(err, RateLimited):
        return "rate_limit"
    if isinstance(err, BodyTooLarge):
        return "body_size"
    if isinstance(err, Forbidden):
        return "allowlist"
    return err.code or err.type


class Tally:
    """The counts of this process: a hook (streams in flight) and a reporter (the rest)."""

    def __init__(self, signals: Signals) -> None:
        self.signals = signals
        self.counts: dict[str, Counts] = {name: {} for name in LABELS}
        # Per route: non-cumulative bucket counts, then the +Inf bucket, then the sum.
        self.histograms: dict[str, dict[str, list[float]]] = {name: {} for name in BUCKETS}
        self.in_flight = 0
        self.streams = 0
        self._models: set[str] = set()
        self._users: set[str] = set()

    async def before(self, ex: Exchange) -> None:
        self.in_flight += 1
        if endpoint_of(ex.upstream_path) in TOKEN_ENDPOINTS:
            body = ex.json()
            if body is None or body.get("stream") is not True:
                ex.observe_usage = True  # reads the reply's usage; changes nothing sent
                return
            self.streams += 1
            ex.set(_STREAM, True)
            # Reading every chunk costs more than the rest of the metrics together: a stream
            # is read for its usage only when the client (or a token feature) asked for it.
            options = body.get("stream_options")
            if isinstance(options, dict) and options.get("include_usage") is True:
                ex.observe_usage = True

    async def after(self, ex: Exchange) -> None:
        return None

    def refused(self, err: GatewayError) -> None:
        reason = refusal_reason(err)
        if reason is not None:
            add(self.counts["refusals"], (reason,))

    def finished(self, ex: Exchange) -> None:
        self.in_flight -= 1
        if ex.get(_STREAM):
            self.streams -= 1
        outcome = ex.outcome
        route = ex.route.name
        model = self.bounded(self._models, MAX_MODELS, ex.known_model or "-")
        counts = self.counts
        status = str(outcome.status)
        key = (route, provider_of(ex), model, endpoint_of(ex.upstream_path), status)
        add(counts["requests"], (*key, ex.key_kind.value))
        if outcome.refusal is not None:
            self.refused(outcome.refusal)
        if outcome.cache is not None:
            self.signals.count("cache", outcome.cache)
        total = outcome.ended - ex.started
        upstream = outcome.upstream_seconds
        if outcome.upstream_wait:
            add(counts["upstream_attempts"], (route,), outcome.attempts)
            for cause in outcome.retried:
                add(counts["upstream_retries"], (route, cause))
            self.observe("upstream_first_byte_seconds", route, outcome.first_byte)
        self.observe("request_duration_seconds", route, total)
        self.observe("gateway_added_seconds", route, max(total - upstream, 0.0))
        tokens_in, tokens_out = usage_counts(outcome.usage)
        if tokens_in or tokens_out:
            principal = ex.principal
            user = self.bounded(self._users, MAX_USERS, principal.name if principal else "-")
            add(counts["tokens"], (model, user, "in"), tokens_in or 0)
            add(counts["tokens"], (model, user, "out"), tokens_out or 0)

    def observe(self, name: str, route: str, seconds: float) -> None:
        bounds = BUCKETS[name]
        series = self.histograms[name].get(route)
        if series is None:
            series = self.histograms[name][route] = [0.0] * (len(bounds) + 2)
        series[bisect_left(bounds, seconds)] += 1
        series[-1] += seconds

    @staticmethod
    def bounded(seen: set[str], limit: int, value: str) -> str:
        if value in seen:
            return value
        if len(seen) >= limit:
            return OTHER
        seen.add(value)
        return value

    def snapshot(self) -> dict[str, Any]:
        """Everything counted so far, as JSON-ready data (see `merge`)."""
        readings = {name: float(read()) for name, read in self.signals.readings.items()}
        return {
            "counts": {
                name: [[*key, value] for key, value in counts.items()]
                for name, counts in self.counts.items()
            },
            "signals": [[*key, value] for key, value in self.signals.counts.items()],
            "histograms": {
                name: [[route, *series] for route, series in per_route.items()]
                for name, per_route in self.histograms.items()
            },
            "gauges": {
                "requests_in_flight": self.in_flight,
                "streams_in_flight": self.streams,
                **readings,
            },
        }


def add(counts: Counts, key: tuple[str, ...], n: float = 1) -> None:
    counts[key] = counts.get(key, 0) + n


def provider_of(ex: Exchange) -> str:
    decision = ex.get(DECISION)
    if decision is None:
        return "passthrough"
    if isinstance(decision, SingleModel):
        return decision.target.provider.name
    return type(decision).__name__.lower()
