"""Prices per model, and what one exchange costs.

MODEL_PRICES holds rules ``pattern=input/output[/cached]`` in US dollars per million
tokens, separated by ``;`` or new lines; a pattern may use ``*`` and ``?`` and the
first rule that matches a model wins (put ``gpt-4o-mini*`` before ``gpt-4o*``).
Costs are whole nano-dollars, so that counters add exactly in any store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

NANOS_PER_USD = 1_000_000_000
# A price per million tokens times a number of tokens is micro-dollars: x1000 is nanos.
_NANOS_PER_MICRO = 1000
_MAX_PRICE = 1_000_000.0


class PriceError(ValueError):
    """A MODEL_PRICES rule cannot be read; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million input, output and cached input tokens."""

    input: float
    output: float
    cached: float

    def cost(self, prompt: int, completion: int, cached: int = 0) -> int:
        """Nano-dollars for `prompt` input tokens (`cached` of them read from a cache)."""
        cached = min(max(cached, 0), prompt)
        micros = (prompt - cached) * self.input + cached * self.cached
        micros += completion * self.output
        return math.ceil(micros * _NANOS_PER_MICRO)


@dataclass(frozen=True, slots=True)
class Prices:
    """The MODEL_PRICES rules, in order."""

    rules: tuple[tuple[str, Price], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.rules)

    def find(self, model: str | None) -> Price | None:
        """The first rule's price for `model`; for several (`a,b`: one request asked of
        each, its usage added up), the dearest of theirs, so no cost is left out."""
        if not model:
            return None
        if "," in model:
            return dearest([self.find(part) for part in model.split(",") if part])
        for pattern, price in self.rules:
            if fnmatchcase(model, pattern):
                return price
        return None

    def cost(self, model: str | None, usage: dict[str, Any] | None) -> int:
        """Nano-dollars an exchange with this usage cost; 0 for a model without a price."""
        price = self.find(model)
        if price is None or not usage:
            return 0
        prompt, completion, cached = usage_counts(usage)
        return price.cost(prompt, completion, cached)


def dearest(prices: list[Price | None]) -> Price | None:
    """A price no lower than any of `prices` for any kind of token; None if none has one."""
    known = [p for p in prices if p is not None]
    if len(known) < 2:
        return known[0] if known else None
    return Price(
        max(p.input for p in known), max(p.output for p in known), max(p.cached for p in known)
    )


def usage_counts(usage: dict[str, Any] | None) -> tuple[int, int, int]:
    """(prompt, completion, cached prompt) tokens of an OpenAI usage object."""
    if not usage:
        return 0, 0, 0
    prompt = count(usage.get("prompt_tokens", usage.get("input_tokens")))
    completion = count(usage.get("completion_tokens", usage.get("output_tokens")))
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    cached = count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return prompt, completion, min(cached, prompt)


def count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def parse_prices(text: str, where: str = "MODEL_PRICES") -> Prices:
    """Rules from `text` (see the module's docstring); `#` starts a comment."""
    rules: list[tuple[str, Price]] = []
    for line in text.splitlines():
        for part in line.split("#", 1)[0].split(";"):
            rule = part.strip()
            if rule:
                rules.append(parse_rule(rule, where))
    return Prices(tuple(rules))


def parse_rule(rule: str, where: str) -> tuple[str, Price]:
    pattern, sep, figures = rule.partition("=")
    numbers = [n.strip().lstrip("$") for n in figures.split("/")]
    form = (
        f"{where}: {rule!r}: expected model-or-pattern=input/output[/cached] in US dollars "
        f"per million tokens, such as gpt-4o*=2.50/10/1.25"
    )
    if not sep or not pattern.strip() or len(numbers) not in (2, 3):
        raise PriceError(form)
    try:
        values = [float(n) for n in numbers]
    except ValueError:
        raise PriceError(form) from None
    if any(not 0 <= v <= _MAX_PRICE for v in values):  # also false for NaN
        raise PriceError(f"{where}: {rule!r}: prices are between 0 and {_MAX_PRICE:g}")
    cached = values[2] if len(values) == 3 else values[0]
    return pattern.strip(), Price(values[0], values[1], cached)


def dollars(nanos: int) -> float:
    return nanos / NANOS_PER_USD
