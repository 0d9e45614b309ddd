"""MODEL_PRICES: rules, first match, cached input, the file form, and mistakes named."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_forward.budgets.budget import Budget, BudgetError, check_budget
from ai_forward.budgets.prices import NANOS_PER_USD, Price, parse_prices
from ai_forward.env import SettingsError
from ai_forward.settings import Settings


def test_first_matching_rule_prices_a_model() -> None:
    prices = parse_prices("gpt-4o-mini*=0.15/0.60/0.075; gpt-4o*=2.50/10/1.25\nclaude-*=3/15")
    assert prices.find("gpt-4o-mini-2024-07-18") == Price(0.15, 0.60, 0.075)
    assert prices.find("gpt-4o") == Price(2.50, 10, 1.25)
    assert prices.find("claude-sonnet-4-5") == Price(3, 15, 3)  # no cached price: the input's
    assert prices.find("o1") is None
    assert prices.cost("o1", {"prompt_tokens": 100}) == 0


def test_several_models_in_one_request_are_priced_at_the_dearest_of_each_kind() -> None:
    prices = parse_prices("gpt-4o=2.50/10/1.25;claude-*=3/15")
    # Their usage comes back added up: no token of it may be priced below its model's.
    assert prices.find("gpt-4o,claude-sonnet-4-5") == Price(3, 15, 3)
    assert prices.find("gpt-4o,o1") == Price(2.50, 10, 1.25)  # o1 has no price
    assert prices.find("o1,o3") is None


def test_cost_counts_cached_input_at_its_own_price() -> None:
    prices = parse_prices("gpt-4o=2.50/10/1.25")
    usage = {
        "prompt_tokens": 1_000_000,
        "completion_tokens": 100_000,
        "prompt_tokens_details": {"cached_tokens": 400_000},
    }
    # 600k fresh at $2.50/M + 400k cached at $1.25/M + 100k out at $10/M
    assert prices.cost("gpt-4o", usage) == round((1.5 + 0.5 + 1.0) * NANOS_PER_USD)
    responses = {"input_tokens": 10, "output_tokens": 5}
    assert prices.cost("gpt-4o", responses) == round((10 * 2.5 + 5 * 10) * 1000)


def test_prices_come_from_a_file_with_comments(tmp_path: Path) -> None:
    file = tmp_path / "prices.txt"
    file.write_text("# read 2026-12-02\ngpt-4o*=2.50/10/1.25  # OpenAI\n\ngemini-*=0.3/2.5\n")
    settings = Settings.from_env({"MODEL_PRICES": f"@{file}"})
    assert settings.budgets.prices.find("gemini-2.5-flash") == Price(0.3, 2.5, 0.3)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("gpt-4o", "expected model-or-pattern=input/output"),
        ("gpt-4o=2.5", "expected model-or-pattern=input/output"),
        ("gpt-4o=two/10", "expected model-or-pattern=input/output"),
        ("gpt-4o=-1/10", "prices are between 0"),
        ("@/no/such/prices.txt", "cannot read /no/such/prices.txt"),
    ],
)
def test_malformed_prices_stop_start_up_naming_the_setting(value: str, says: str) -> None:
    with pytest.raises(SettingsError, match="MODEL_PRICES") as caught:
        Settings.from_env({"MODEL_PRICES": value})
    assert says in str(caught.value)


def test_budget_forms_and_periods() -> None:
    assert check_budget("5/day") == Budget(5.0, "day")
    assert check_budget("$200 per month") == Budget(200.0, "month")
    assert check_budget({"amount": 1.5, "period": "day"}) == Budget(1.5, "day")
    assert check_budget(None) is None
    for wrong in ("5", "5/week", {"amount": "5", "period": "day"}, {"amount": -1, "period": "day"}):
        with pytest.raises(BudgetError, match="5/day"):
            check_budget(wrong)


def test_budget_windows_end_at_the_next_utc_day_or_month() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert Budget(1, "day").window(now) == ("2026-12-31", datetime(2027, 1, 1, tzinfo=UTC))
    assert Budget(1, "month").window(now) == ("2026-12", datetime(2027, 1, 1, tzinfo=UTC))
    feb = datetime(2026, 2, 10, tzinfo=UTC)
    assert Budget(1, "month").window(feb) == ("2026-02", datetime(2026, 3, 1, tzinfo=UTC))
