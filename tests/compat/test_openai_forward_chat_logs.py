"""`aifd convert` reads openai-forward's own 0.7/0.8 chat logs beside this gateway's."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ai_forward.chatlog.convert import convert
from tests.chatlog.test_convert import aifd_convert, record, write_log

# Written for these tests in openai-forward's format: Log/<route>/chat/chat*.log.
THEIR_LOG = Path(__file__).parent / "openai_forward_log" / "Log"


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """openai-forward's times carry no offset: they are read in the local time zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def mixed_log_dir(tmp_path: Path) -> Path:
    log_dir = tmp_path / "Log"
    shutil.copytree(THEIR_LOG, log_dir)
    write_log(
        log_dir,
        "openai",
        "2024-05-02.jsonl",
        [record("2024-05-02T12:00:00+00:00", model="gpt-4o-mini", messages=[], n=1)],
    )
    return log_dir


def by_model(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["model"]: r for r in records}


def test_aifd_convert_merges_openai_forward_logs_with_ours_oldest_first(tmp_path: Path) -> None:
    log_dir = mixed_log_dir(tmp_path)
    result = aifd_convert("Log", "-o", "chat.json", cwd=tmp_path, TZ="UTC")
    assert result.returncode == 0, result.stderr
    records = json.loads((tmp_path / "chat.json").read_text())
    assert [r["model"] for r in records] == [
        "gpt-3.5-turbo",  # 2024-05-01 09:00:05, theirs
        "gpt-4",  # 11:30, its answer in the next (rotated) file
        "llama3",  # 2024-05-02 10:00, route localai, pre-0.7 `forwarded-for`
        "gpt-4o-mini",  # 2024-05-02 12:00, ours
        "gpt-4o",  # 2024-05-03, never answered
    ]
    assert "wrote 5 exchanges from 4 files" in result.stderr
    assert "1 openai-forward answer without its request" in result.stderr
    assert "1 not valid JSON" in result.stderr
    assert log_dir.joinpath("openai_forward.log").exists()

    models = by_model(records)
    first = models["gpt-3.5-turbo"]
    assert first["time"] == "2024-05-01T09:00:05+00:00"
    assert (first["route"], first["kind"], first["source"]) == ("openai", "chat", "openai-forward")
    assert first["client_ip"] == "203.0.113.7"
    assert first["uid"] == "6f1c2e0a9b8d4c3e2f1a0b9c8d7e6f50"
    assert first["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "what's 2+2?"},
    ]
    assert first["params"] == {
        "model": "gpt-3.5-turbo", "stream": True, "n": 1, "temperature": 0.7, "top_p": 1,
        "frequency_penalty": 0, "presence_penalty": 0,
    }  # fmt: skip
    assert first["reply"]["choices"][0]["message"] == {"role": "assistant", "content": "4"}
    assert (first["status"], first["complete"]) == (200, True)

    tools = models["gpt-4"]
    assert tools["user"] == "alice"
    assert tools["messages"][0]["content"] == "Weather in Paris?\nAnd in Tokyo?"
    message = tools["reply"]["choices"][0]["message"]
    assert message["tool_calls"][0]["function"] == {
        "name": "weather",
        "arguments": '{"city": "Paris"}',
    }
    assert message["content"] is None

    local = models["llama3"]
    assert (local["route"], local["client_ip"]) == ("localai", "198.51.100.4")
    assert local["reply"]["choices"][0]["message"]["content"] == "Hello!"

    assert models["gpt-4o-mini"]["n"] == 1  # ours, as written
    unanswered = models["gpt-4o"]
    assert unanswered["messages"] == [{"role": "user", "content": "你好"}]
    assert (unanswered["reply"], unanswered["complete"], unanswered["status"]) == (
        None,
        False,
        None,
    )


def test_convert_filters_openai_forward_records_by_route_and_time(tmp_path: Path) -> None:
    log_dir = mixed_log_dir(tmp_path)
    out = tmp_path / "out.json"
    localai = convert(log_dir, out, route="localai")
    assert [r["model"] for r in localai.records] == ["llama3"]
    since = convert(log_dir, out, since="2024-05-02T11:00+00:00")
    assert [r["model"] for r in since.records] == ["gpt-4o-mini", "gpt-4o"]
    assert since.filtered == 3


def test_convert_reads_one_openai_forward_route_folder(tmp_path: Path) -> None:
    log_dir = mixed_log_dir(tmp_path)
    result = convert(log_dir / "openai" / "chat", tmp_path / "out.json")
    assert sorted(r["model"] for r in result.records) == ["gpt-3.5-turbo", "gpt-4", "gpt-4o"]
    assert {r["route"] for r in result.records} == {"openai"}


def test_a_python_expression_in_a_log_line_is_never_evaluated(tmp_path: Path) -> None:
    folder = tmp_path / "Log" / "openai" / "chat"
    folder.mkdir(parents=True)
    marker = tmp_path / "ran"
    (folder / "chat.log").write_text(f"__import__('pathlib').Path({str(marker)!r}).touch()\n")
    result = convert(tmp_path / "Log", tmp_path / "out.json")
    assert result.records == [] and dict(result.skipped) == {"not valid JSON": 1}
    assert not marker.exists()
