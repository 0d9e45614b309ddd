"""Chat logs: what is recorded, where, rotation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..env import EnvReader, Setting, SettingsError, table

LOG_CHAT = Setting(
    "LOG_CHAT", False, "record every chat/completion/embedding exchange as JSON Lines"
)
LOG_DIR = Setting("LOG_DIR", "./Log", "where chat logs go: LOG_DIR/chat/ROUTE/*.jsonl")
LOG_ROTATE_SIZE = Setting(
    "LOG_ROTATE_SIZE",
    100 * 1000**2,
    "start a new chat-log file above this size (0: no size limit)",
    shown="100MB",
)
LOG_ROTATE_DAILY = Setting(
    "LOG_ROTATE_DAILY", True, "also start a new chat-log file every day (UTC)"
)
LOG_RETENTION = Setting(
    "LOG_RETENTION", "forever", "drop old chat logs: `30d` (after days), `50files` (keep newest)"
)
LOG_QUEUE_SIZE = Setting(
    "LOG_QUEUE_SIZE", 10_000, "records waiting for the writer; beyond it they are dropped"
)
DOC = table(LOG_CHAT, LOG_DIR, LOG_ROTATE_SIZE, LOG_ROTATE_DAILY, LOG_RETENTION, LOG_QUEUE_SIZE)

_RETENTION = re.compile(r"^(\d+)\s*(d|days?|files?)?$", re.IGNORECASE)


@dataclass(frozen=True)
class ChatLogSettings:
    """Validated at start-up; read-only afterwards."""

    enabled: bool = LOG_CHAT.default
    directory: Path = Path(LOG_DIR.default)
    rotate_size: int = LOG_ROTATE_SIZE.default
    rotate_daily: bool = LOG_ROTATE_DAILY.default
    retention_days: int | None = None  # LOG_RETENTION: forever
    retention_files: int | None = None
    queue_size: int = LOG_QUEUE_SIZE.default

    @property
    def chat_dir(self) -> Path:
        return self.directory / "chat"


def read_chatlog_settings(reader: EnvReader) -> ChatLogSettings:
    days, files = read_retention(reader.raw(LOG_RETENTION.name))
    return ChatLogSettings(
        enabled=reader.flag(LOG_CHAT.name, LOG_CHAT.default),
        directory=Path(reader.text(LOG_DIR.name, LOG_DIR.default)),
        rotate_size=reader.size(LOG_ROTATE_SIZE.name, LOG_ROTATE_SIZE.default),
        rotate_daily=reader.flag(LOG_ROTATE_DAILY.name, LOG_ROTATE_DAILY.default),
        retention_days=days,
        retention_files=files,
        queue_size=reader.integer(
            LOG_QUEUE_SIZE.name, LOG_QUEUE_SIZE.default, minimum=1, maximum=10_000_000
        ),
    )


def read_retention(value: str | None) -> tuple[int | None, int | None]:
    """LOG_RETENTION as (days, files); `forever` (the default) is (None, None)."""
    if value is None or value.lower() in ("forever", "never", "none"):
        return None, None
    match = _RETENTION.match(value)
    if not match or int(match.group(1)) < 1:
        raise SettingsError(
            f"LOG_RETENTION={value!r}: expected forever, a number of days such as 30d, "
            f"or a number of files to keep per route such as 50files"
        )
    number, unit = int(match.group(1)), (match.group(2) or "d").lower()
    return (None, number) if unit.startswith("file") else (number, None)
