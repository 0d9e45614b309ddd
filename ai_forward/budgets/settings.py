"""Prices of models (MODEL_PRICES); budgets themselves are per user (the admin API, CLI)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..env import EnvReader, Setting, SettingsError, table
from .prices import PriceError, Prices, parse_prices

MODEL_PRICES: Setting[str | None] = Setting(
    "MODEL_PRICES",
    None,
    "USD per 1M tokens: gpt-4o-mini*=0.15/0.60/0.075;gpt-4o*=2.50/10/1.25 "
    "(input/output/cached input; first match wins), or @file with such lines",
)
DOC = table(MODEL_PRICES)
_MAX_FILE = 1024 * 1024


@dataclass(frozen=True)
class BudgetSettings:
    """Validated at start-up; read-only afterwards."""

    prices: Prices = field(default_factory=Prices)


def read_budget_settings(reader: EnvReader) -> BudgetSettings:
    value = reader.raw(MODEL_PRICES.name)
    if value is None:
        return BudgetSettings()
    where = MODEL_PRICES.name
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            if path.stat().st_size > _MAX_FILE:
                raise SettingsError(f"{where}: {path} is larger than {_MAX_FILE} bytes")
            value = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(f"{where}: cannot read {path}: {exc.strerror}") from None
        where = f"{where} ({path})"
    try:
        return BudgetSettings(parse_prices(value, where))
    except PriceError as exc:
        raise SettingsError(str(exc)) from None
