"""`aifd convert`: the chat logs as one JSON array of exchanges, oldest first.

Reads this gateway's `.jsonl` records and openai-forward's `chat*.log` files (see
`openai_forward_log`), each line recognised by its shape, and merges both.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from . import openai_forward_log as theirs

# Logs at least this large get a progress bar.
PROGRESS_FROM = 8 * 1024 * 1024
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class ConvertError(ValueError):
    """The arguments cannot be used; the message says which and why."""


@dataclass
class Conversion:
    """What `convert` read, kept and skipped."""

    files: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    filtered: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def parse_time(name: str, value: str | None, now: datetime | None = None) -> datetime | None:
    """`--since/--until`: ISO date or time (UTC unless it says otherwise) or `2h`, `7d` ago."""
    if value is None:
        return None
    text = value.strip()
    relative = _RELATIVE.match(text)
    if relative:
        delta = timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConvertError(
            f"{name} {value!r}: expected a date or time such as 2024-05-01, "
            f"2024-05-01T13:30 (UTC unless an offset is given), or an age such as 2h or 7d"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def log_files(log_dir: Path) -> list[Path]:
    """The chat log files of a LOG_DIR, its chat/ folder, a route folder, or one file:
    this gateway's `*.jsonl` and openai-forward's `chat*.log`."""
    if log_dir.is_file():
        return [log_dir]
    if not log_dir.is_dir():
        raise ConvertError(f"{log_dir}: no such directory; pass the LOG_DIR the gateway wrote to")
    root = log_dir / "chat" if (log_dir / "chat").is_dir() else log_dir
    files = sorted(root.rglob("*.jsonl"))
    files += sorted(p for p in log_dir.rglob("chat*.log") if theirs.is_their_file(p))
    if not files:
        raise ConvertError(
            f"no chat log files (*.jsonl) in {root.resolve()}, nor openai-forward's "
            f"chat*.log under {log_dir.resolve()}; is LOG_CHAT on in the gateway, and is "
            f"this its LOG_DIR (default: Log/ in the directory it runs in)?"
        )
    return files


def read_records(
    files: list[Path],
    result: Conversion,
    *,
    route: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    console: Console | None = None,
) -> None:
    """Read every line of `files` into `result`, skipping (and counting) unusable ones."""
    total = sum(path.stat().st_size for path in files)
    progress = Progress(
        TextColumn("reading chat logs"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=total < PROGRESS_FROM or console is None,
    )
    pairs = theirs.Pairs()

    def take(record: dict[str, Any]) -> None:
        if keep(record, route, since, until):
            result.records.append(record)
        else:
            result.filtered += 1

    with progress:
        task = progress.add_task("read", total=total)
        for path in files:
            result.files += 1
            their_route = theirs.route_of(path)
            for size, record, problem in read_file(path, pairs, their_route):
                progress.advance(task, size)
                if problem is not None:
                    result.skipped[problem] += 1
                elif record is not None:
                    take(record)
    for record in pairs.unanswered():
        take(record)
    if pairs.orphans:
        result.skipped["openai-forward answer without its request"] += pairs.orphans
    result.records.sort(key=lambda r: r["_at"])
    for record in result.records:
        del record["_at"]


def read_file(
    path: Path, pairs: theirs.Pairs, their_route: str
) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(bytes consumed, record or None, why it was skipped or None) for each line.

    An openai-forward request is held in `pairs` until its answer's line completes it.
    """
    with path.open("rb") as handle:
        for line in handle:
            size = len(line)
            if not line.strip():
                yield size, None, None
                continue
            last = not line.endswith(b"\n")
            try:
                value = theirs.parse_line(line)
            except ValueError:
                yield size, None, "truncated last line" if last else "not valid JSON"
                continue
            if theirs.is_request(value):
                yield size, None, pairs.request(value, their_route)
                continue
            if theirs.is_answer(value):
                yield size, pairs.answer(value), None
                continue
            at = record_time(value)
            if at is None:
                yield size, None, "not a chat record (no time)"
                continue
            value["_at"] = at
            yield size, value, None


def record_time(record: Any) -> datetime | None:
    if not isinstance(record, dict) or not isinstance(record.get("time"), str):
        return None
    try:
        moment = datetime.fromisoformat(record["time"])
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def keep(
    record: dict[str, Any], route: str | None, since: datetime | None, until: datetime | None
) -> bool:
    at: datetime = record["_at"]
    if route is not None and record.get("route") != route:
        return False
    if since is not None and at < since:
        return False
    return until is None or at < until


def convert(
    log_dir: Path,
    output: Path,
    *,
    route: str | None = None,
    since: str | None = None,
    until: str | None = None,
    console: Console | None = None,
) -> Conversion:
    """Write `output` (`-` for stdout) from the logs under `log_dir`; return what was done.

    Without any log file nothing is written: ConvertError says where it looked.
    """
    start, end = parse_time("--since", since), parse_time("--until", until)
    if route is not None:
        route = route.strip("/")
    files = log_files(log_dir)
    result = Conversion()
    read_records(files, result, route=route, since=start, until=end, console=console)
    data = orjson.dumps(result.records, option=orjson.OPT_INDENT_2) + b"\n"
    if str(output) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(data)
    return result


def summary(result: Conversion, output: Path) -> str:
    where = "stdout" if str(output) == "-" else str(output)
    text = f"wrote {len(result.records)} exchanges from {result.files} files to {where}"
    if result.filtered:
        text += f"; {result.filtered} left out by --route/--since/--until"
    if result.skipped:
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(result.skipped.items()))
        text += f"; skipped {sum(result.skipped.values())} lines ({reasons})"
    return text
