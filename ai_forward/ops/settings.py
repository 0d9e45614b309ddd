"""Metrics and logs: what is measured, who may read it, how lines look."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..env import EnvReader, Setting, SettingsError, table

METRICS = Setting(
    "METRICS", False, "serve Prometheus metrics at /metrics (costs throughput; see README)"
)
METRICS_TOKEN: Setting[str | None] = Setting(
    "METRICS_TOKEN", None, "bearer token /metrics requires (unset: loopback clients only)"
)
METRICS_PUBLIC = Setting(
    "METRICS_PUBLIC", False, "serve /metrics without a token to any address, not only loopback"
)
LOG_LEVEL = Setting("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR (access lines are INFO)")
LOG_FORMAT = Setting("LOG_FORMAT", "text", "text, or json: one JSON object per line")
DOC = table(METRICS, METRICS_TOKEN, METRICS_PUBLIC, LOG_LEVEL, LOG_FORMAT)

LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class OpsSettings:
    """Validated at start-up; read-only afterwards."""

    metrics: bool = METRICS.default
    metrics_token: str | None = field(default=METRICS_TOKEN.default, repr=False)
    metrics_public: bool = METRICS_PUBLIC.default
    log_level: str = LOG_LEVEL.default
    log_json: bool = False


def read_ops_settings(reader: EnvReader) -> OpsSettings:
    level = reader.text(LOG_LEVEL.name, LOG_LEVEL.default).upper()
    if level == "WARN":
        level = "WARNING"
    if level not in LEVELS:
        raise SettingsError(f"LOG_LEVEL={level!r}: expected one of {', '.join(LEVELS)}")
    form = reader.text(LOG_FORMAT.name, LOG_FORMAT.default).lower()
    if form not in ("text", "json"):
        raise SettingsError(f"LOG_FORMAT={form!r}: expected text or json")
    token = reader.raw(METRICS_TOKEN.name)
    return OpsSettings(
        metrics=reader.flag(METRICS.name, METRICS.default),
        metrics_token=token,
        metrics_public=reader.flag(METRICS_PUBLIC.name, METRICS_PUBLIC.default),
        log_level=level,
        log_json=form == "json",
    )
