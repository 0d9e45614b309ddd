"""Chat logs (issue 4): what is recorded, where, rotation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..env import EnvReader, SettingsError

# (NAME, default, meaning): shown by `aifd run --help`; README and .env.example must name each.
DOC: tuple[tuple[str, str, str], ...] = (
    ("LOG_CHAT", "false", "record every chat/completion/embedding exchange as JSON Lines"),
    ("LOG_DIR", "./Log", "where chat logs go: LOG_DIR/chat/ROUTE/*.jsonl"),
    ("LOG_ROTATE_SIZE", "100MB", "start a new chat-log file above this size (0: no size limit)"),
    ("LOG_ROTATE_DAILY", "true", "also start a new chat-log file every day (UTC)"),
    ("LOG_RETENTION", "forever", "drop old chat logs: `30d` (after days), `50files` (keep newest)"),
    ("LOG_QUEUE_SIZE", "10000", "records waiting for the writer; beyond it they are dropped"),
)

_RETENTION = re.compile(r"^(\d+)\s*(d|days?|files?)?$", re.IGNORECASE)


@dataclass(frozen=True)
class ChatLogSettings:
    """Validated at start-up; read-only afterwards."""

    enabled: bool = False
    directory: Path = Path("Log")
    rotate_size: int = 100 * 1000**2
    rotate_daily: bool = True
    retention_days: int | None = None
    retention_files: int | None = None
    queue_size: int = 10_000

    @property
    def chat_dir(self) -> Path:
        return self.directory / "chat"


def read_chatlog_settings(reader: EnvReader) -> ChatLogSettings:
    days, files = read_retention(reader.raw("LOG_RETENTION"))
    return ChatLogSettings(
        enabled=reader.flag("LOG_CHAT", False),
        directory=Path(reader.text("LOG_DIR", "./Log")),
        rotate_size=reader.size("LOG_ROTATE_SIZE", 100 * 1000**2),
        rotate_daily=reader.flag("LOG_ROTATE_DAILY", True),
        retention_days=days,
        retention_files=files,
        queue_size=reader.integer("LOG_QUEUE_SIZE", 10_000, minimum=1, maximum=10_000_000),
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
