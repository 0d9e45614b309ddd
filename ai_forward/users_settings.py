"""Issued user keys, the store, usage and the admin API (issue 7)."""

from __future__ import annotations

from dataclasses import dataclass

from .env import EnvReader

# (NAME, default, meaning): shown by `aifd run --help`; README and .env.example must name each.
DOC: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class UserSettings:
    """Validated at start-up; read-only afterwards."""


def read_user_settings(reader: EnvReader) -> UserSettings:
    return UserSettings()
