"""Retries, key cooldown, timeouts and graceful shutdown (issue 5)."""

from __future__ import annotations

from dataclasses import dataclass

from .env import EnvReader

# (NAME, default, meaning): shown by `aifd run --help`; README and .env.example must name each.
DOC: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class ResilienceSettings:
    """Validated at start-up; read-only afterwards."""


def read_resilience_settings(reader: EnvReader) -> ResilienceSettings:
    return ResilienceSettings()
