"""Providers and translation between formats (issue 6)."""

from __future__ import annotations

from dataclasses import dataclass

from .env import EnvReader

# (NAME, default, meaning): shown by `aifd run --help`; README and .env.example must name each.
DOC: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class ProviderSettings:
    """Validated at start-up; read-only afterwards."""


def read_provider_settings(reader: EnvReader) -> ProviderSettings:
    return ProviderSettings()
