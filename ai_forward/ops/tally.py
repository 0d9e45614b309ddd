"""What the metrics count, kept in plain dicts and lists on the request path.

A finished request costs one dict update for its series, three bisects for its
timings and, when the upstream reported tokens, one more update: no locks, no
metrics library. The figures are copied on the event loop when published or scraped
(`capture`), and turned into text and Prometheus families in a thread (`snapshot`,
`exposition.py`). Every label value comes from a bounded set: route names, provider
names, a fixed list of endpoints, status codes, key kinds, and at most MAX_MODELS
models and MAX_USERS users (the rest: "other").
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

from ..errors import BodyTooLarge, Forbidden, GatewayError, RateLimited, Unauthorized
from ..exchange import Exchange, StateKey
from ..providers.hook import DECISION, SingleModel
from ..signals import Signals

# Counters by family name; each key is the tuple of its label values.
Counts = dict[tuple[Any, ...], float]
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
MAX_PATHS = 4096  # upstream paths whose endpoint is remembered (past that: looked up)
OTHER = "other"
_TIMINGS = ("request_duration_seconds", "gateway_added_seconds", "upstream_first_byte_seconds")
_DURATION, _ADDED, _FIRST_BYTE = (BUCKETS[name] for name in _TIMINGS)
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


class RouteFigures:
    """One route's timings (per histogram: non-cumulative bucket counts, the +Inf bucket,
    then the sum) and its upstream calls, updated in place."""

    __slots__ = ("added", "attempts", "duration", "first_byte")

    def __init__(self) -> None:
        self.duration = [0.0] * (len(_DURATION) + 2)
        self.added = [0.0] * (len(_ADDED) + 2)
        self.first_byte = [0.0] * (len(_FIRST_BYTE) + 2)
        self.attempts = [0]


class Tally:
    """The counts of this process, as a reporter: what is in flight and whose usage to
    read (`started`), the rest once the request is over (`finished`)."""

    def __init__(self, signals: Signals) -> None:
        self.signals = signals
        self.in_flight = 0
        self.streams = 0
        # (route, provider, model, endpoint, status, key kind) -> requests; the status
        # (an int) and the key kind (a StrEnum) become text in `snapshot`.
        self._requests: dict[tuple[Any, ...], list[int]] = {}
        self._refusals: Counts = {}
        self._retries: Counts = {}
        self._tokens: dict[tuple[str, str], list[int]] = {}  # (model, user) -> [in, out]
        self._routes: dict[str, RouteFigures] = {}
        self._models: set[str] = set()
        self._users: set[str] = set()
        self._endpoints: dict[str, str] = {}  # upstream path -> endpoint, bounded

    def started(self, ex: Exchange) -> None:
        self.in_flight += 1
        path = ex.upstream_path
        if (self._endpoints.get(path) or self._endpoint(path)) not in TOKEN_ENDPOINTS:
            return
        # A substring test in C spares parsing the body of a request that does not stream.
        body = ex.json() if ex.body.find(b'"stream"') != -1 else None
        if body is None or body.get("stream") is not True:
            ex.observe_tokens = True  # reads the usage at the reply's end; changes nothing sent
            return
        self.streams += 1
        ex.set(_STREAM, True)
        # Even its last chunks cost a stream a call per chunk: a stream is read for its usage
        # only when the client (or a token feature) asked for it.
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            ex.observe_tokens = True

    def refused(self, err: GatewayError) -> None:
        reason = refusal_reason(err)
        if reason is not None:
            add(self._refusals, (reason,))

    def finished(self, ex: Exchange) -> None:
        # Once per request, on the event loop: every call and lookup here costs throughput
        # (measured), hence the inlined arithmetic and the raw label values.
        self.in_flight -= 1
        if self.streams and ex.get(_STREAM) is True:
            self.streams -= 1
        outcome = ex.outcome
        route = ex.route.name
        model = ex.model_hint or "-"
        if model not in self._models:
            model = bounded(self._models, MAX_MODELS, model)
        path = ex.upstream_path
        decision = ex.get(DECISION)
        key = (
            route,
            "passthrough" if decision is None else provider_name(decision),
            model,
            self._endpoints.get(path) or self._endpoint(path),
            outcome.status,
            ex.key_kind,
        )
        count = self._requests.get(key)  # one hash of the key when it is known
        if count is None:
            count = self._requests[key] = [0]
        count[0] += 1
        if outcome.refusal is not None:
            self.refused(outcome.refusal)
        if outcome.cache is not None:
            signals = self.signals.counts  # Signals.count, inlined
            cache = ("cache", outcome.cache)
            signals[cache] = signals.get(cache, 0) + 1
        figures = self._routes.get(route) or self._route(route)
        ended = outcome.ended
        total = ended - ex.started
        series = figures.duration
        series[bisect_left(_DURATION, total)] += 1
        series[-1] += total
        # The time before the answer began to go out, less the time spent waiting on
        # upstreams: the duration less Outcome.upstream_seconds.
        added = (outcome.relayed or ended) - ex.started - outcome.upstream_wait
        if added < 0.0:
            added = 0.0
        series = figures.added
        series[bisect_left(_ADDED, added)] += 1
        series[-1] += added
        if outcome.upstream_wait:
            figures.attempts[0] += outcome.attempts
            for cause in outcome.retried:
                add(self._retries, (route, cause))
            first_byte = outcome.first_byte
            series = figures.first_byte
            series[bisect_left(_FIRST_BYTE, first_byte)] += 1
            series[-1] += first_byte
        reply = outcome.reply
        if reply is not None:
            usage = reply.get("usage")
            if usage:
                # usage_counts, inlined: this runs for nearly every request.
                tokens_in = usage.get("prompt_tokens")
                if tokens_in is None:
                    tokens_in = usage.get("input_tokens")
                tokens_out = usage.get("completion_tokens")
                if tokens_out is None:
                    tokens_out = usage.get("output_tokens")
                if not isinstance(tokens_in, int):
                    tokens_in = 0
                if not isinstance(tokens_out, int):
                    tokens_out = 0
                if tokens_in or tokens_out:
                    principal = ex.principal
                    pair = self._tokens.get((model, principal.name if principal else "-"))
                    if pair is None:
                        pair = self._token_pair(model, principal.name if principal else "-")
                    pair[0] += tokens_in
                    pair[1] += tokens_out

    def _token_pair(self, model: str, user: str) -> list[int]:
        """The [in, out] counts of a (model, user) not seen yet (its user bounded)."""
        user = bounded(self._users, MAX_USERS, user)
        pair = self._tokens.get((model, user))
        if pair is None:
            pair = self._tokens[(model, user)] = [0, 0]
        return pair

    def _endpoint(self, path: str) -> str:
        endpoint = endpoint_of(path)
        if len(self._endpoints) < MAX_PATHS:
            self._endpoints[path] = endpoint
        return endpoint

    def _route(self, route: str) -> RouteFigures:
        figures = self._routes[route] = RouteFigures()
        return figures

    def capture(self) -> Capture:
        """Everything counted so far, copied on the event loop (quick: no formatting)."""
        routes = self._routes.items()
        return Capture(
            counts={
                "requests": {key: count[0] for key, count in self._requests.items()},
                "refusals": dict(self._refusals),
                "upstream_attempts": {
                    (route,): figures.attempts[0]
                    for route, figures in routes
                    if figures.attempts[0]
                },
                "upstream_retries": dict(self._retries),
                "tokens": {key: tuple(pair) for key, pair in self._tokens.items()},
            },
            signals=dict(self.signals.counts),
            histograms={
                "upstream_first_byte_seconds": {
                    route: list(figures.first_byte)
                    for route, figures in routes
                    if figures.attempts[0]
                },
                "request_duration_seconds": {route: list(f.duration) for route, f in routes},
                "gateway_added_seconds": {route: list(f.added) for route, f in routes},
            },
            gauges={
                "requests_in_flight": self.in_flight,
                "streams_in_flight": self.streams,
                **{name: float(read()) for name, read in self.signals.readings.items()},
            },
        )


@dataclass(frozen=True, slots=True)
class Capture:
    """A copy of a Tally's figures, for `snapshot` to format away from the event loop."""

    counts: dict[str, dict[tuple[Any, ...], Any]]
    signals: dict[tuple[str, str], int]
    histograms: dict[str, dict[str, list[float]]]
    gauges: dict[str, float]


def snapshot(capture: Capture) -> dict[str, Any]:
    """A capture as JSON-ready data, every label value as text (read by `families`)."""
    counts = dict(capture.counts)
    tokens = counts.pop("tokens", {})
    rows = {
        name: [[*map(str, key), value] for key, value in series.items()]
        for name, series in counts.items()
    }
    rows["tokens"] = [
        [model, user, direction, value]
        for (model, user), pair in tokens.items()
        for direction, value in zip(("in", "out"), pair, strict=True)
    ]
    return {
        "counts": rows,
        "signals": [[*key, value] for key, value in capture.signals.items()],
        "histograms": {
            name: [[route, *series] for route, series in per_route.items()]
            for name, per_route in capture.histograms.items()
        },
        "gauges": capture.gauges,
    }


def add(counts: Counts, key: tuple[str, ...], n: float = 1) -> None:
    counts[key] = counts.get(key, 0) + n


def bounded(seen: set[str], limit: int, value: str) -> str:
    """`value`, or OTHER once `limit` values have been seen."""
    if value in seen:
        return value
    if len(seen) >= limit:
        return OTHER
    seen.add(value)
    return value


def provider_name(decision: object) -> str:
    if isinstance(decision, SingleModel):
        return decision.target.provider.name
    return type(decision).__name__.lower()
