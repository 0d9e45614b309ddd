"""The writer on its own: whole lines, rotation, retention, a bounded queue, settings."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from loguru import logger

from ai_forward.chatlog import writer as chatlog_writer
from ai_forward.chatlog.settings import ChatLogSettings, read_chatlog_settings
from ai_forward.chatlog.writer import ChatLogWriter, Entry, encode
from ai_forward.env import EnvReader, SettingsError


def settings(tmp_path: Path, **overrides: Any) -> ChatLogSettings:
    return ChatLogSettings(enabled=True, directory=tmp_path / "Log", **overrides)


def write(config: ChatLogSettings, records: list[tuple[str, dict[str, Any]]]) -> ChatLogWriter:
    async def run() -> ChatLogWriter:
        async with ChatLogWriter(config) as writer:
            for route, record in records:
                writer.submit(route, record)
        return writer

    return asyncio.run(run())


def files(config: ChatLogSettings, route: str = "openai") -> list[Path]:
    return sorted((config.chat_dir / route).glob("*.jsonl"))


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_every_queued_record_is_written_when_the_lifespan_ends(tmp_path: Path) -> None:
    config = settings(tmp_path)
    writer = write(config, [("openai", {"i": i, "text": "é\n\u2028"}) for i in range(2000)])
    assert writer.written == 2000 and writer.dropped == 0
    (path,) = files(config)
    assert f"-p{os.getpid()}" in path.name
    assert path.read_bytes().endswith(b"\n")
    assert [r["i"] for r in lines(path)] == list(range(2000))


def test_files_rotate_by_size_keeping_lines_whole(tmp_path: Path) -> None:
    config = settings(tmp_path, rotate_size=1000)
    write(config, [("openai", {"i": i, "pad": "x" * 80}) for i in range(50)])
    written = files(config)
    assert len(written) >= 5
    assert all(path.stat().st_size <= 1000 for path in written)
    assert sorted(r["i"] for path in written for r in lines(path)) == list(range(50))


def test_a_line_larger_than_the_size_limit_still_gets_written(tmp_path: Path) -> None:
    config = settings(tmp_path, rotate_size=100)
    write(config, [("openai", {"big": "y" * 500}), ("openai", {"small": 1})])
    assert [lines(path) for path in files(config)] == [[{"big": "y" * 500}], [{"small": 1}]]


def test_files_rotate_when_the_day_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = settings(tmp_path)

    async def run() -> None:
        async with ChatLogWriter(config) as writer:
            writer.submit("openai", {"day": 1})
            await wait_for(lambda: writer.written == 1)
            monkeypatch.setattr(chatlog_writer, "today", lambda: "2999-01-01")
            writer.submit("openai", {"day": 2})

    asyncio.run(run())
    assert [lines(path) for path in files(config)] == [[{"day": 1}], [{"day": 2}]]


def test_route_names_become_safe_folder_names(tmp_path: Path) -> None:
    config = settings(tmp_path)
    write(config, [("a/b", {"x": 1}), ("../up", {"x": 2})])
    assert sorted(p.name for p in config.chat_dir.iterdir()) == ["a_b", "up"]


def test_retention_in_days_deletes_older_files(tmp_path: Path) -> None:
    config = settings(tmp_path, retention_days=2)
    folder = config.chat_dir / "openai"
    folder.mkdir(parents=True)
    old, recent = folder / "chat-old.jsonl", folder / "chat-recent.jsonl"
    for path, age_days in ((old, 3), (recent, 1)):
        path.write_text("{}\n")
        moment = time.time() - age_days * 86400
        os.utime(path, (moment, moment))
    write(config, [("openai", {"new": True})])
    names = {p.name for p in files(config)}
    assert "chat-old.jsonl" not in names and "chat-recent.jsonl" in names
    assert len(names) == 2


def test_retention_by_count_keeps_the_newest_files(tmp_path: Path) -> None:
    config = settings(tmp_path, retention_files=3)
    folder = config.chat_dir / "openai"
    folder.mkdir(parents=True)
    for i in range(5):
        path = folder / f"chat-{i}.jsonl"
        path.write_text("{}\n")
        moment = time.time() - 1000 + i
        os.utime(path, (moment, moment))
    write(config, [("openai", {"new": True})])
    names = {p.name for p in files(config)}
    assert len(names) == 3
    assert {"chat-3.jsonl", "chat-4.jsonl"} < names


def test_full_queue_drops_counts_and_warns_without_blocking(tmp_path: Path) -> None:
    config = settings(tmp_path, queue_size=3)
    writer = ChatLogWriter(config)
    warnings: list[str] = []
    sink = logger.add(warnings.append, level="WARNING")
    try:
        started = time.monotonic()
        for i in range(10):
            writer.submit("openai", {"i": i})
        assert time.monotonic() - started < 0.1
    finally:
        logger.remove(sink)
    assert writer.dropped == 7
    assert len(warnings) == 1 and "LOG_QUEUE_SIZE" in warnings[0]

    async def drain() -> None:
        async with writer:
            pass

    asyncio.run(drain())
    assert [r["i"] for r in lines(files(config)[0])] == [0, 1, 2]


def test_secrets_are_replaced_in_the_encoded_line() -> None:
    entry = Entry(
        "openai", {"messages": ["key sk-abcdef here"], "echo": "sk-abcdef"}, ("sk-abcdef",)
    )
    assert encode(entry) == b'{"messages":["key [redacted] here"],"echo":"[redacted]"}\n'


@pytest.mark.parametrize(
    ("value", "days", "count"),
    [("forever", None, None), ("30", 30, None), ("7d", 7, None), ("10 days", 10, None),
     ("50files", None, 50), ("1 file", None, 1)],
)  # fmt: skip
def test_retention_setting_forms(value: str, days: int | None, count: int | None) -> None:
    read = read_chatlog_settings(EnvReader({"LOG_RETENTION": value}))
    assert (read.retention_days, read.retention_files) == (days, count)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LOG_RETENTION": "soon"}, "LOG_RETENTION"),
        ({"LOG_RETENTION": "0d"}, "LOG_RETENTION"),
        ({"LOG_ROTATE_SIZE": "big"}, "LOG_ROTATE_SIZE"),
        ({"LOG_ROTATE_DAILY": "sometimes"}, "LOG_ROTATE_DAILY"),
        ({"LOG_QUEUE_SIZE": "0"}, "LOG_QUEUE_SIZE"),
        ({"LOG_CHAT": "maybe"}, "LOG_CHAT"),
    ],
)
def test_bad_settings_are_refused_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        read_chatlog_settings(EnvReader(env))


def test_defaults() -> None:
    read = read_chatlog_settings(EnvReader({}))
    assert read == ChatLogSettings()
    assert read.chat_dir == Path("Log/chat")
    assert read.rotate_size == 100_000_000 and read.rotate_daily and not read.enabled


async def wait_for(condition: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
