"""`/metrics`: every worker's counts in Prometheus text format, for whoever may read them.

With METRICS_TOKEN set, a scrape needs ``Authorization: Bearer <token>``; without it,
only loopback clients are served, unless METRICS_PUBLIC=true.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ..env import is_loopback
from ..errors import Forbidden, GatewayError, MethodNotAllowed, Unauthorized
from ..types import Receive, Scope, Send
from .settings import OpsSettings
from .tally import BUCKETS, LABELS
from .workers import WorkerFigures

PREFIX = "aifd_"
HELP = {
    "requests": "Requests answered, by route, provider, model, endpoint, status and key kind",
    "refusals": "Requests the gateway refused itself, by reason",
    "upstream_attempts": "Calls made to upstreams, retries included",
    "upstream_retries": "Upstream calls retried, by cause (status, timeout, unreachable)",
    "tokens": "Tokens used as reported by upstreams, by model, user and direction",
    "upstream_first_byte_seconds": "Time from sending a request upstream to its headers",
    "request_duration_seconds": "Time from a request's arrival to its last byte sent",
    "gateway_added_seconds": "Time the gateway itself added to a request",
    "requests_in_flight": "Requests being served",
    "streams_in_flight": "Streamed replies being relayed",
}
SIGNALS = {
    "cache": ("cache_requests", "Response cache lookups, by result", "result"),
    "storage_error": ("storage_errors", "Errors of the rate limit and user stores", "store"),
}


def families(snapshots: Iterable[dict[str, Any]]) -> list[Metric]:
    """The metric families of the summed snapshots (see `Tally.snapshot`)."""
    counts: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in LABELS}
    signals: dict[tuple[str, str], float] = {}
    histograms: dict[str, dict[str, list[float]]] = {name: {} for name in BUCKETS}
    gauges: dict[str, float] = {}
    for snapshot in snapshots:
        for name, rows in snapshot["counts"].items():
            target = counts.setdefault(name, {})
            for *labels, value in rows:
                key = tuple(labels)
                target[key] = target.get(key, 0) + value
        for event, label, value in snapshot["signals"]:
            signals[(event, label)] = signals.get((event, label), 0) + value
        for name, rows in snapshot["histograms"].items():
            per_route = histograms.setdefault(name, {})
            for route, *series in rows:
                have = per_route.setdefault(route, [0.0] * len(series))
                per_route[route] = [a + b for a, b in zip(have, series, strict=True)]
        for name, value in snapshot["gauges"].items():
            gauges[name] = gauges.get(name, 0) + value
    out: list[Metric] = []
    for name, labels in LABELS.items():
        counter = CounterMetricFamily(PREFIX + name, HELP[name], labels=labels)
        for key, value in sorted(counts[name].items()):
            counter.add_metric(list(key), value)
        out.append(counter)
    for event, (name, text, label) in SIGNALS.items():
        counter = CounterMetricFamily(PREFIX + name, text, labels=[label])
        for (seen, value_label), value in sorted(signals.items()):
            if seen == event:
                counter.add_metric([value_label], value)
        out.append(counter)
    for name, bounds in BUCKETS.items():
        histogram = HistogramMetricFamily(PREFIX + name, HELP[name], labels=["route"])
        for route, series in sorted(histograms[name].items()):
            histogram.add_metric([route], list(cumulative(bounds, series)), sum_value=series[-1])
        out.append(histogram)
    for name, value in sorted(gauges.items()):
        if name.endswith("_total"):
            out.append(CounterMetricFamily(PREFIX + name[: -len("_total")], name, value=value))
        else:
            out.append(GaugeMetricFamily(PREFIX + name, HELP.get(name, name), value=value))
    return out


def cumulative(bounds: tuple[float, ...], series: list[float]) -> Iterator[tuple[str, float]]:
    running = 0.0
    for bound, count in zip((*bounds, float("inf")), series[:-1], strict=True):
        running += count
        yield ("+Inf" if bound == float("inf") else f"{bound:g}", running)


class Families:
    """A one-off collector: yields the families it was given."""

    def __init__(self, found: list[Metric]) -> None:
        self.found = found

    def collect(self) -> list[Metric]:
        return self.found


def render(snapshots: list[dict[str, Any]]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families(families(snapshots)))
    return generate_latest(registry)


class MetricsApp:
    """The ASGI app at `/metrics`."""

    def __init__(self, settings: OpsSettings, figures: WorkerFigures) -> None:
        self.token = settings.metrics_token.encode() if settings.metrics_token else None
        self.public = settings.metrics_public
        self.figures = figures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            self.check(scope)
        except GatewayError as err:
            start = {"type": "http.response.start", "status": err.status}
            await send({**start, "headers": err.raw_headers()})
            await send({"type": "http.response.body", "body": err.body()})
            return
        gather = self.figures.gather()
        # Reading the other workers' files, summing and formatting take a few milliseconds
        # for many series: not on the loop.
        body = await asyncio.to_thread(lambda: render(gather()))
        headers = [(b"content-type", CONTENT_TYPE_LATEST.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def check(self, scope: Scope) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            raise MethodNotAllowed("/metrics answers GET only")
        if self.token is not None:
            presented = b""
            for name, value in scope["headers"]:
                if name == b"authorization" and value[:7].lower() == b"bearer ":
                    presented = value[7:].strip()
            if not hmac.compare_digest(presented, self.token):
                raise Unauthorized(
                    "/metrics needs `Authorization: Bearer <METRICS_TOKEN>`; ask the "
                    "gateway's operator for the token"
                )
            return
        client = scope.get("client")
        if not self.public and not (client and is_loopback(client[0])):
            raise Forbidden(
                "/metrics is served to loopback clients only; set METRICS_TOKEN (scrapers "
                "then send it as a bearer token) or METRICS_PUBLIC=true"
            )
