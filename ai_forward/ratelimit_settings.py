"""Rate limits (issue 3): RPM, TPM, stream pace, storage."""

from __future__ import annotations

from dataclasses import dataclass

from .env import EnvReader

# (NAME, default, meaning): shown by `aifd run --help`; README and .env.example must name each.
DOC: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class LimitSettings:
    """Validated at start-up; read-only afterwards."""


def read_limit_settings(reader: EnvReader) -> LimitSettings:
    return LimitSettings()
