"""FALLBACKS: for a model, the models that answer in turn when it cannot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..env import EnvReader, Setting, SettingsError, table

MAX_CHAIN = 8

FALLBACKS = Setting(
    "FALLBACKS",
    "",
    "model=fallback,fallback pairs (';'-separated): the models asked in turn when a "
    "model's attempts fail (429, 5xx, timeout, unreachable) or it cannot take the "
    "request (context length, model not found, too large); each routed by MODEL_ROUTES",
)
DOC = table(FALLBACKS)


@dataclass(frozen=True)
class FallbackSettings:
    """Each model's chain of fallbacks, in the order they are asked."""

    chains: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.chains)


def read_fallback_settings(reader: EnvReader) -> FallbackSettings:
    return FallbackSettings(parse_chains(FALLBACKS.name, reader.raw(FALLBACKS.name)))


def parse_chains(name: str, value: str | None) -> dict[str, tuple[str, ...]]:
    """`a=b,c;d=e` as {"a": ("b", "c"), "d": ("e",)}; every error names the setting."""
    chains: dict[str, tuple[str, ...]] = {}
    if value is None:
        return chains
    for entry in (part.strip() for part in value.split(";")):
        if not entry:
            continue
        model, sep, rest = entry.partition("=")
        model = model.strip()
        chain = tuple(m.strip() for m in rest.split(","))
        if not sep or not model or not all(chain):
            raise SettingsError(
                f"{name}: {entry!r} is not model=fallback[,fallback...]; e.g. "
                "gpt-4o=claude-3-5-sonnet-latest,gemini-1.5-pro;gpt-4o-mini=claude-3-5-haiku-latest"
            )
        if "," in model:
            raise SettingsError(f"{name}: {entry!r}: give one model before '='")
        if model in chains:
            raise SettingsError(f"{name}: {model!r} has two chains; merge them into one")
        if model in chain or len(set(chain)) != len(chain):
            raise SettingsError(f"{name}: {entry!r} names a model twice in one chain")
        if len(chain) > MAX_CHAIN:
            raise SettingsError(f"{name}: {entry!r} has more than {MAX_CHAIN} fallbacks")
        chains[model] = chain
    return chains
