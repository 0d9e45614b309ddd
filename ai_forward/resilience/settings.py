"""Retries, key cooldown, timeouts and graceful shutdown (issue 5)."""

from __future__ import annotations

from dataclasses import dataclass

from ..env import EnvReader, SettingsError

MAX_RETRIES = 10

# (NAME, default, meaning): shown by `aifd run --help`; README and .env.example must name each.
DOC: tuple[tuple[str, str, str], ...] = (
    ("RETRIES", "2", "retries of a failed upstream attempt (0 turns retrying off; at most 10)"),
    ("RETRY_BACKOFF", "0.5", "seconds: base of the exponential backoff between retries"),
    ("RETRY_BACKOFF_MAX", "8", "seconds: longest backoff between two attempts"),
    ("RETRY_AFTER_MAX", "30", "seconds: longest upstream Retry-After the gateway waits out"),
    ("KEY_COOLDOWN", "60", "seconds a real key is skipped after a 401 or repeated 429s"),
    ("CONNECT_TIMEOUT", "TIMEOUT", "seconds to open a connection to the upstream"),
    ("FIRST_BYTE_TIMEOUT", "600", "seconds from sending a request to the upstream's answer"),
    ("IDLE_TIMEOUT", "TIMEOUT", "seconds: longest gap between chunks of an upstream body"),
    ("SHUTDOWN_GRACE", "30", "seconds in-flight requests may take to finish after SIGTERM"),
)


@dataclass(frozen=True)
class ResilienceSettings:
    """Validated at start-up; read-only afterwards.

    A timeout of None falls back to the core TIMEOUT setting.
    """

    retries: int = 2
    retry_backoff: float = 0.5
    retry_backoff_max: float = 8.0
    retry_after_max: float = 30.0
    key_cooldown: float = 60.0
    connect_timeout: float | None = None
    first_byte_timeout: float = 600.0
    idle_timeout: float | None = None
    shutdown_grace: float = 30.0


def read_resilience_settings(reader: EnvReader) -> ResilienceSettings:
    settings = ResilienceSettings(
        retries=reader.integer("RETRIES", 2, minimum=0, maximum=MAX_RETRIES),
        retry_backoff=reader.number("RETRY_BACKOFF", 0.5),
        retry_backoff_max=reader.number("RETRY_BACKOFF_MAX", 8.0),
        retry_after_max=reader.number("RETRY_AFTER_MAX", 30.0),
        key_cooldown=reader.number("KEY_COOLDOWN", 60.0),
        connect_timeout=optional_seconds(reader, "CONNECT_TIMEOUT"),
        first_byte_timeout=reader.number("FIRST_BYTE_TIMEOUT", 600.0, minimum=0.1),
        idle_timeout=optional_seconds(reader, "IDLE_TIMEOUT"),
        shutdown_grace=reader.number("SHUTDOWN_GRACE", 30.0),
    )
    if settings.retry_backoff_max < settings.retry_backoff:
        raise SettingsError(
            f"RETRY_BACKOFF_MAX={settings.retry_backoff_max:g} is below "
            f"RETRY_BACKOFF={settings.retry_backoff:g}: the cap must be at least the base"
        )
    return settings


def optional_seconds(reader: EnvReader, name: str) -> float | None:
    if reader.raw(name) is None:
        return None
    return reader.number(name, 0.0, minimum=0.1)
