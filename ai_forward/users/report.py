"""A usage report: rows per day, user and model, with totals per user, per model and
overall; the admin API, `aifd users usage --json` and the dashboard show the same."""

from __future__ import annotations

from typing import Any

from ..budgets.prices import NANOS_PER_USD
from .store import UsageRow

_COUNTS = ("requests", "prompt_tokens", "completion_tokens", "cached_tokens")


def usage_report(since: str, rows: list[UsageRow]) -> dict[str, Any]:
    users: dict[str, dict[str, Any]] = {}
    models: dict[str, dict[str, Any]] = {}
    days: dict[str, dict[str, Any]] = {}
    overall = blank()
    for row in rows:
        for total in (
            users.setdefault(row.name, blank()),
            models.setdefault(row.model, blank()),
            days.setdefault(row.day, blank()),
            overall,
        ):
            add(total, row)
    return {
        "since": since,
        "data": [r.public() for r in rows],
        "totals": {name: done(t) for name, t in users.items()},
        "models": {name: done(t) for name, t in models.items()},
        "days": {day: done(t) for day, t in days.items()},
        "total": done(overall),
    }


def blank() -> dict[str, Any]:
    return dict.fromkeys((*_COUNTS, "cost_nanos"), 0)


def add(total: dict[str, Any], row: UsageRow) -> None:
    total["requests"] += row.requests
    total["prompt_tokens"] += row.prompt_tokens
    total["completion_tokens"] += row.completion_tokens
    total["cached_tokens"] += row.cached_tokens
    total["cost_nanos"] += row.cost_nanos


def done(total: dict[str, Any]) -> dict[str, Any]:
    out = {name: total[name] for name in _COUNTS}
    out["total_tokens"] = total["prompt_tokens"] + total["completion_tokens"]
    out["cost"] = total["cost_nanos"] / NANOS_PER_USD
    return out
