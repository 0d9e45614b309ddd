"""Retries, key cooldown, timeouts and graceful shutdown."""

from __future__ import annotations

from dataclasses import dataclass

from ..env import EnvReader, Setting, SettingsError, table

MAX_RETRIES = 10

RETRIES = Setting(
    "RETRIES", 2, "retries of a failed upstream attempt (0 turns retrying off; at most 10)"
)
RETRY_BACKOFF = Setting(
    "RETRY_BACKOFF", 0.5, "seconds: base of the exponential backoff between retries"
)
RETRY_BACKOFF_MAX = Setting(
    "RETRY_BACKOFF_MAX", 8.0, "seconds: longest backoff between two attempts"
)
RETRY_AFTER_MAX = Setting(
    "RETRY_AFTER_MAX", 30.0, "seconds: longest upstream Retry-After the gateway waits out"
)
KEY_COOLDOWN = Setting(
    "KEY_COOLDOWN", 60.0, "seconds a real key is skipped after a 401 or repeated 429s"
)
# None: the core TIMEOUT setting.
CONNECT_TIMEOUT: Setting[float | None] = Setting(
    "CONNECT_TIMEOUT", None, "seconds to open a connection to the upstream", shown="TIMEOUT"
)
FIRST_BYTE_TIMEOUT = Setting(
    "FIRST_BYTE_TIMEOUT", 600.0, "seconds from sending a request to the upstream's answer"
)
IDLE_TIMEOUT: Setting[float | None] = Setting(
    "IDLE_TIMEOUT",
    None,
    "seconds: longest gap between chunks of an upstream body (unset: TIMEOUT, at least 300)",
    shown="300",
)
SHUTDOWN_GRACE = Setting(
    "SHUTDOWN_GRACE", 30.0, "seconds in-flight requests may take to finish after SIGTERM"
)
DOC = table(
    RETRIES,
    RETRY_BACKOFF,
    RETRY_BACKOFF_MAX,
    RETRY_AFTER_MAX,
    KEY_COOLDOWN,
    CONNECT_TIMEOUT,
    FIRST_BYTE_TIMEOUT,
    IDLE_TIMEOUT,
    SHUTDOWN_GRACE,
)


@dataclass(frozen=True)
class ResilienceSettings:
    """Validated at start-up; read-only afterwards.

    A timeout of None falls back to the core TIMEOUT setting.
    """

    retries: int = RETRIES.default
    retry_backoff: float = RETRY_BACKOFF.default
    retry_backoff_max: float = RETRY_BACKOFF_MAX.default
    retry_after_max: float = RETRY_AFTER_MAX.default
    key_cooldown: float = KEY_COOLDOWN.default
    connect_timeout: float | None = CONNECT_TIMEOUT.default
    first_byte_timeout: float = FIRST_BYTE_TIMEOUT.default
    idle_timeout: float | None = IDLE_TIMEOUT.default
    shutdown_grace: float = SHUTDOWN_GRACE.default


def read_resilience_settings(reader: EnvReader) -> ResilienceSettings:
    settings = ResilienceSettings(
        retries=reader.integer(RETRIES.name, RETRIES.default, minimum=0, maximum=MAX_RETRIES),
        retry_backoff=reader.number(RETRY_BACKOFF.name, RETRY_BACKOFF.default),
        retry_backoff_max=reader.number(RETRY_BACKOFF_MAX.name, RETRY_BACKOFF_MAX.default),
        retry_after_max=reader.number(RETRY_AFTER_MAX.name, RETRY_AFTER_MAX.default),
        key_cooldown=reader.number(KEY_COOLDOWN.name, KEY_COOLDOWN.default),
        connect_timeout=optional_seconds(reader, CONNECT_TIMEOUT.name),
        first_byte_timeout=reader.number(
            FIRST_BYTE_TIMEOUT.name, FIRST_BYTE_TIMEOUT.default, minimum=0.1
        ),
        idle_timeout=optional_seconds(reader, IDLE_TIMEOUT.name),
        shutdown_grace=reader.number(SHUTDOWN_GRACE.name, SHUTDOWN_GRACE.default),
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
