"""The overview: totals, requests/errors/refusals over time, tokens and cost per day by
user and model, and the latest errors."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from . import charts
from .activity import Activity
from .layout import count, money, table

DAYS = 14


def overview(report: dict[str, Any], activity: Activity) -> str:
    total = report["total"]
    today = report["days"].get(datetime.now(UTC).date().isoformat(), {"requests": 0, "cost": 0.0})
    cards = "".join(
        f'<div class="card"><span>{label}</span><b>{value}</b></div>'
        for label, value in (
            ("Requests, 30 days", count(total["requests"])),
            ("Tokens, 30 days", count(total["total_tokens"])),
            ("Cost, 30 days", money(total["cost"])),
            ("Requests today", count(today["requests"])),
            ("Cost today", money(today["cost"])),
        )
    )
    days = [(datetime.now(UTC).date() - timedelta(days=i)).isoformat() for i in range(DAYS)][::-1]
    rows = report["data"]
    tokens_by_user = per_day(rows, days, "user", "total_tokens")
    cost_by_model = per_day(rows, days, "model", "cost")
    minutes = activity.series(60)
    labels = [datetime.fromtimestamp(m * 60, UTC).strftime("%H:%M") for m, _ in minutes]
    traffic = {
        "requests": [float(c[0]) for _, c in minutes],
        "errors": [float(c[1]) for _, c in minutes],
        "refusals (4xx)": [float(c[2]) for _, c in minutes],
    }
    since = (
        datetime.fromtimestamp(activity.since, UTC).strftime("%H:%M UTC")
        if activity.since
        else "now"
    )
    return (
        "<h1>Overview</h1>"
        f'<section class="cards" aria-label="Totals">{cards}</section>'
        '<h2>Over time</h2><div class="charts">'
        + charts.lines("Requests, errors and refusals per minute (UTC)", labels, traffic)
        + charts.stacked_bars("Tokens per day, by user", days, tokens_by_user)
        + charts.stacked_bars("Cost per day, by model (USD)", days, cost_by_model, money=True)
        + "</div>"
        f'<p class="muted">Requests per minute are counted by this worker since {since}, while '
        "the dashboard is open; tokens and cost come from the usage of issued keys (all "
        "workers, flushed every few seconds).</p>"
        + "<h2>By user</h2>"
        + totals_table("user", report["totals"])
        + "<h2>By model</h2>"
        + totals_table("model", report["models"])
        + "<h2>Latest errors</h2>"
        + errors_table(activity)
    )


def per_day(rows: list[dict[str, Any]], days: list[str], by: str, field: str) -> dict[str, Any]:
    index = {day: i for i, day in enumerate(days)}
    series: dict[str, list[float]] = {}
    for row in rows:
        if row["day"] in index:
            values = series.setdefault(str(row[by]), [0.0] * len(days))
            values[index[row["day"]]] += float(row[field])
    return series


def totals_table(what: str, totals: dict[str, dict[str, Any]]) -> str:
    rows = [
        [
            escape(name),
            count(t["requests"]),
            count(t["prompt_tokens"]),
            count(t["completion_tokens"]),
            count(t["cached_tokens"]),
            money(t["cost"]),
        ]
        for name, t in sorted(totals.items(), key=lambda item: -item[1]["cost"])
    ]
    headers = [what, "requests", "prompt", "completion", "cached", "cost"]
    return table(headers, rows, numeric={1, 2, 3, 4, 5})


def errors_table(activity: Activity) -> str:
    rows = [
        [
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(f.at)),
            str(f.status),
            escape(f"{f.method} {f.path}"),
            escape(f.user or "-"),
            f'<span class="bad">{escape(f.message)}</span>',
        ]
        for f in reversed(activity.failures)
    ]
    return table(["time (UTC)", "status", "request", "user", "error"], rows, numeric={1})
