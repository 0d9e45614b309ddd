"""Recent chat-log records, searched by time, user, model and text (on a thread).

Reads the newest files of LOG_DIR/chat first, at most SCAN_BYTES in all, and returns at
most LIMIT matches, newest first. A record is named by its file (relative to the chat
folder) and byte offset; only files found under that folder can be opened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

SCAN_BYTES = 64 * 1024 * 1024
LIMIT = 100
_SEARCHED = ("messages", "prompt", "input", "instructions", "reply", "error")


@dataclass(frozen=True, slots=True)
class Query:
    since: datetime | None = None
    until: datetime | None = None
    user: str = ""
    model: str = ""
    text: str = ""


@dataclass(frozen=True, slots=True)
class Found:
    file: str
    offset: int
    record: dict[str, Any]


def chat_files(root: Path) -> list[Path]:
    """The chat-log files under `root`, newest first."""
    if not root.is_dir():
        return []
    files = [p for p in root.rglob("*.jsonl") if p.is_file()]
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


def search(root: Path, query: Query, limit: int = LIMIT) -> list[Found]:
    found: list[Found] = []
    budget = SCAN_BYTES
    for path in chat_files(root):
        if budget <= 0 or len(found) >= limit:
            break
        size = path.stat().st_size
        start = max(size - budget, 0)
        budget -= size - start
        hits = [f for f in read_from(root, path, start) if matches(f.record, query)]
        found += reversed(hits)
    found.sort(key=lambda f: str(f.record.get("time", "")), reverse=True)
    return found[:limit]


def read_from(root: Path, path: Path, start: int) -> list[Found]:
    name = path.relative_to(root).as_posix()
    out: list[Found] = []
    with path.open("rb") as handle:
        handle.seek(start)
        if start:
            handle.readline()  # a partial line
        offset = handle.tell()
        for line in handle:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                record = None
            if isinstance(record, dict) and isinstance(record.get("time"), str):
                out.append(Found(name, offset, record))
            offset += len(line)
    return out


def matches(record: dict[str, Any], query: Query) -> bool:
    if query.user and record.get("user") != query.user:
        return False
    if query.model and query.model.lower() not in str(record.get("model") or "").lower():
        return False
    stamp = parse(record.get("time"))
    if query.since and (stamp is None or stamp < query.since):
        return False
    if query.until and (stamp is None or stamp > query.until):
        return False
    if query.text:
        words = orjson.dumps([record.get(k) for k in _SEARCHED]).decode().lower()
        return query.text.lower() in words
    return True


def parse(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def open_one(root: Path, file: str, offset: int) -> dict[str, Any] | None:
    """The record at `offset` of `file`, if `file` is a chat-log file under `root`."""
    wanted = os.path.normpath(file)
    path = next((p for p in chat_files(root) if p.relative_to(root).as_posix() == wanted), None)
    if path is None or not 0 <= offset < path.stat().st_size:
        return None
    with path.open("rb") as handle:
        handle.seek(offset)
        line = handle.readline()
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None
