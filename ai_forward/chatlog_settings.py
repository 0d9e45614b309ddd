"""Chat logs (issue 4): what is recorded, where, rotation."""

from __future__ import annotations

from dataclasses import dataclass

from .env import EnvReader

# (NAME, default, meaning): shown by `aifd run --help`; README and .env.example must name each.
DOC: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class ChatLogSettings:
    """Validated at start-up; read-only afterwards."""


def read_chatlog_settings(reader: EnvReader) -> ChatLogSettings:
    return ChatLogSettings()
