"""One log, one format: loguru, uvicorn and the access lines all go through the same writer.

`aifd run` sets this up in each process (`served_app`): loguru's records and the
access lines join one queue, written by one thread (`accesslog.AccessLog`), so they
come out in the order they happened; uvicorn's loggers hand their records to loguru.
LOG_FORMAT=json makes every line one JSON object. Tracebacks never show local
variables (they would hold the real keys).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import orjson
from loguru import logger

from ..accesslog import AccessLog, iso_time
from ..settings import Settings
from .settings import OpsSettings

if TYPE_CHECKING:
    from loguru import Message

    from ..types import ASGIApp

TEXT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {message}\n{exception}"


def install(ops: OpsSettings, writer: AccessLog | None) -> None:
    """Send loguru's records at LOG_LEVEL and above to `writer` (None: straight to stderr)."""
    os.environ["LOGURU_DIAGNOSE"] = "NO"
    os.environ["LOGURU_BACKTRACE"] = "NO"
    logger.remove()
    out = writer if writer is not None else AccessLog(json=ops.log_json)

    def sink(message: Message) -> None:
        if ops.log_json:
            out.app_line(json_line(message.record) + "\n")
        else:
            out.app_line(str(message))

    logger.add(
        sink,
        level=ops.log_level,
        format="{message}" if ops.log_json else TEXT,
        diagnose=False,
        backtrace=False,
    )


def json_line(record: Any) -> str:
    line: dict[str, Any] = {
        "time": iso_time(record["time"].timestamp()),
        "level": record["level"].name,
        "logger": record["name"],
        "message": record["message"],
    }
    if record["exception"] is not None:
        kind, value, _ = record["exception"]
        line["exception"] = f"{kind.__name__ if kind else 'Exception'}: {value}"
    return orjson.dumps(line, default=str).decode()


class UvicornHandler(logging.Handler):
    """Hands uvicorn's records to loguru. Made by uvicorn's logging set-up in every
    process, before anything logs: it puts loguru in the chosen format at once."""

    def __init__(self, level: str = "INFO", json: bool = False) -> None:
        super().__init__()
        install(OpsSettings(log_level=level, log_json=json), None)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def uvicorn_log_config(ops: OpsSettings) -> dict[str, Any]:
    """uvicorn's `log_config`: its loggers go through UvicornHandler only."""
    handler = {"()": UvicornHandler, "level": ops.log_level, "json": ops.log_json}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"loguru": handler},
        "loggers": {
            name: {"handlers": ["loguru"], "level": ops.log_level, "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def writer_for(settings: Settings) -> AccessLog:
    """The process's log writer: access lines when ACCESS_LOG is on and LOG_LEVEL shows INFO."""
    ops = settings.ops
    shows_info = logger.level(ops.log_level).no <= logger.level("INFO").no
    return AccessLog(json=ops.log_json, access=settings.access_log and shows_info)


def served_app() -> ASGIApp:
    """The app as `aifd run --workers N` starts it in each worker, logs set up."""
    from ..app import create_app

    settings = Settings.from_env()
    writer = writer_for(settings)
    install(settings.ops, writer)
    return create_app(settings, log=writer)
