"""A user's budget: an amount of US dollars per UTC day or per UTC month."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .prices import NANOS_PER_USD

PERIODS = ("day", "month")
_TEXT = re.compile(r"^\$?\s*(\d+(?:\.\d+)?)\s*(?:/|per)\s*(day|month)$", re.IGNORECASE)
MAX_AMOUNT = 1_000_000_000.0
BUDGET_FORM = (
    "an amount per day or per month in US dollars: 5/day, 200/month, "
    '{"amount": 5, "period": "day"}; or null (CLI: none) for no budget'
)


class BudgetError(ValueError):
    """A budget cannot be read; the message shows the accepted forms."""


@dataclass(frozen=True, slots=True)
class Budget:
    amount: float
    period: str  # "day" or "month", in UTC

    @property
    def nanos(self) -> int:
        return round(self.amount * NANOS_PER_USD)

    def public(self) -> dict[str, Any]:
        return {"amount": self.amount, "period": self.period}

    def __str__(self) -> str:
        return f"${self.amount:g}/{self.period}"

    def window(self, now: datetime | None = None) -> tuple[str, datetime]:
        """The current period's name (2026-12-02 or 2026-12) and when the next begins."""
        now = now or datetime.now(UTC)
        if self.period == "day":
            start = now.replace(hour=0, minute=0, second=0, microsecond=0)
            return start.date().isoformat(), start + timedelta(days=1)
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        following = (start + timedelta(days=32)).replace(day=1)
        return start.strftime("%Y-%m"), following


def check_budget(value: Any) -> Budget | None:
    """A budget from JSON (`{"amount", "period"}` or "5/day") or the CLI; BudgetError else."""
    if value is None:
        return None
    amount: Any = None
    period: Any = None
    if isinstance(value, dict) and set(value) <= {"amount", "period"}:
        amount, period = value.get("amount"), value.get("period")
    elif isinstance(value, str) and (match := _TEXT.match(value.strip())):
        amount, period = float(match.group(1)), match.group(2).lower()
    valid_amount = isinstance(amount, int | float) and not isinstance(amount, bool)
    if not valid_amount or period not in PERIODS or not 0 <= amount <= MAX_AMOUNT:
        raise BudgetError(BUDGET_FORM)
    return Budget(float(amount), period)
