"""`aifd convert`: chat logs to one JSON array, oldest first, tolerant of damage."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web
from rich.console import Console

from ai_forward.chatlog import convert as convert_module
from ai_forward.chatlog.convert import ConvertError, convert, parse_time, summary
from ai_forward.keys import key_fingerprint
from tests.chatlog.fakes import USAGE, streamed, tool_call_chunks
from tests.fakes import FakeUpstream, ProxyServer, Recorded, chunk
from tests.processes import AIFD, clean_env

ROOT = str(Path(__file__).resolve().parents[2])


def aifd_convert(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AIFD, "convert", *args],
        cwd=cwd,
        env=clean_env(PYTHONPATH=ROOT, COLUMNS="200", **env),
        capture_output=True,
        text=True,
        timeout=30,
    )


def record(at: str, route: str = "openai", **extra: Any) -> dict[str, Any]:
    return {"time": at, "route": route, "kind": "chat", **extra}


def write_log(log_dir: Path, route: str, name: str, lines: list[Any], tail: bytes = b"") -> Path:
    folder = log_dir / "chat" / route
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines) + tail)
    return path


def test_aifd_convert_writes_the_exchanges_field_by_field(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], tmp_path: Path
) -> None:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        if rec.json()["messages"][0]["content"] == "weather?":
            return await streamed(request, rec, *tool_call_chunks())
        return await streamed(request, rec, chunk("Sure", role="assistant"), chunk(finish="stop"))

    upstream.handler = handler
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        FORWARD_KEY="fk-convert-key",
        OPENAI_API_KEY="sk-convert-real",
        LOG_CHAT="true",
        LOG_DIR=tmp_path / "Log",
    )
    sdk = openai.OpenAI(base_url=proxy.url + "/v1", api_key="fk-convert-key", max_retries=0)
    system = {"role": "system", "content": "be brief"}
    for text in ("help me", "weather?"):
        messages: Any = [{"role": "user", "content": text}]
        if text == "help me":
            messages.insert(0, system)
        list(sdk.chat.completions.create(model="gpt-4o", messages=messages, stream=True, seed=7))
    proxy.stop()

    result = aifd_convert("Log", "-o", "out/chat.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote 2 exchanges from 1 files to out/chat.json" in result.stderr
    text = (tmp_path / "out" / "chat.json").read_text()
    assert "fk-convert-key" not in text and "sk-convert-real" not in text
    first, second = json.loads(text)
    assert first["time"] < second["time"]
    assert set(first) == {
        "time", "route", "path", "kind", "client_ip", "key", "user", "model", "params",
        "messages", "reply", "usage", "status", "complete", "error", "duration_ms", "attempts",
    }  # fmt: skip
    assert first["route"] == "openai"
    assert first["path"] == "/v1/chat/completions"
    assert first["kind"] == "chat"
    assert first["client_ip"] == "127.0.0.1"
    assert first["key"] == key_fingerprint("fk-convert-key")
    assert first["user"] is None
    assert first["model"] == "gpt-4o"
    assert first["params"] == {"model": "gpt-4o", "stream": True, "seed": 7}
    assert first["messages"] == [system, {"role": "user", "content": "help me"}]
    assert first["reply"] == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "Sure"},
            }
        ],
        "usage": USAGE,
    }
    assert first["usage"] == USAGE
    assert (first["status"], first["complete"], first["error"]) == (200, True, None)
    assert isinstance(first["duration_ms"], float) and first["attempts"] == 1
    datetime.fromisoformat(first["time"])
    calls = second["reply"]["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == [
        '{"city": "Paris", "unit": "celsius"}',
        '{"city": "Tokyo"}',
    ]


def test_truncated_last_line_is_skipped_and_reported(tmp_path: Path) -> None:
    lines = [record("2024-05-01T10:00:00+00:00", n=1), record("2024-05-01T10:00:01+00:00", n=2)]
    write_log(tmp_path / "Log", "openai", "a.jsonl", lines, tail=b'{"time": "2024-05-01T1')
    result = aifd_convert(str(tmp_path / "Log"), "-o", str(tmp_path / "chat.json"), cwd=tmp_path)
    assert result.returncode == 0
    assert [r["n"] for r in json.loads((tmp_path / "chat.json").read_text())] == [1, 2]
    assert "skipped 1 lines (1 truncated last line)" in result.stderr


def test_damaged_lines_are_counted_by_reason(tmp_path: Path) -> None:
    folder = tmp_path / "Log" / "chat" / "openai"
    folder.mkdir(parents=True)
    good = orjson.dumps(record("2024-05-01T10:00:00+00:00")).decode()
    (folder / "a.jsonl").write_text(f'{good}\n{{broken\n\n["a list"]\n{{"no": "time"}}\n{good}\n')
    result = convert(tmp_path / "Log", tmp_path / "out.json")
    assert len(result.records) == 2
    assert dict(result.skipped) == {"not valid JSON": 1, "not a chat record (no time)": 2}
    assert summary(result, Path("x")) == (
        "wrote 2 exchanges from 1 files to x; "
        "skipped 3 lines (2 not a chat record (no time), 1 not valid JSON)"
    )


def test_oldest_first_across_files_and_routes_with_filters(tmp_path: Path) -> None:
    log_dir = tmp_path / "Log"
    write_log(log_dir, "openai", "b.jsonl", [record("2024-05-03T00:00:00+00:00", n=3)])
    write_log(
        log_dir,
        "localai",
        "a.jsonl",
        [
            record("2024-05-04T00:00:00+00:00", "localai", n=4),
            record("2024-05-01T00:00:00+00:00", "localai", n=1),
        ],
    )
    write_log(log_dir, "openai", "c.jsonl", [record("2024-05-02T12:00:00+00:00", n=2)])
    out = tmp_path / "out.json"

    def numbers(**filters: Any) -> list[int]:
        convert(log_dir, out, **filters)
        return [r["n"] for r in json.loads(out.read_text())]

    assert numbers() == [1, 2, 3, 4]
    assert numbers(route="localai") == [1, 4]
    assert numbers(route="/localai") == [1, 4]
    assert numbers(since="2024-05-02") == [2, 3, 4]
    assert numbers(until="2024-05-03") == [1, 2]
    assert numbers(
        since="2024-05-02T06:00Z", until="2024-05-04T00:00:00+00:00", route="openai"
    ) == [2, 3]
    result = convert(log_dir, out, route="openai")
    assert result.filtered == 2
    assert "2 left out by --route/--since/--until" in summary(result, out)


def test_convert_accepts_the_chat_folder_a_route_folder_or_one_file(tmp_path: Path) -> None:
    log_dir = tmp_path / "Log"
    path = write_log(log_dir, "openai", "a.jsonl", [record("2024-05-01T00:00:00+00:00")])
    write_log(log_dir, "other", "a.jsonl", [record("2024-05-01T00:00:00+00:00", "other")])
    out = tmp_path / "out.json"
    assert len(convert(log_dir / "chat", out).records) == 2
    assert len(convert(log_dir / "chat" / "openai", out).records) == 1
    assert len(convert(path, out).records) == 1


def test_relative_times() -> None:
    now = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
    assert parse_time("--since", "2h", now) == datetime(2024, 5, 10, 10, 0, tzinfo=UTC)
    assert parse_time("--since", "7d", now) == datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
    assert parse_time("--since", "2024-05-01T08:00+02:00", now) == datetime(
        2024, 5, 1, 6, 0, tzinfo=UTC
    )
    with pytest.raises(ConvertError, match="--until 'yesterday'"):
        parse_time("--until", "yesterday", now)


def test_bad_arguments_exit_2_with_a_message(tmp_path: Path) -> None:
    missing = aifd_convert("nowhere", cwd=tmp_path)
    assert missing.returncode == 2
    assert "nowhere: no such directory" in missing.stderr
    (tmp_path / "Log" / "chat").mkdir(parents=True)
    bad_time = aifd_convert("Log", "--since", "last week", cwd=tmp_path)
    assert bad_time.returncode == 2
    assert "--since 'last week'" in bad_time.stderr


def test_no_log_files_leaves_the_output_alone_and_says_where_it_looked(tmp_path: Path) -> None:
    (tmp_path / "Log" / "chat" / "openai").mkdir(parents=True)
    output = tmp_path / "chat.json"
    output.write_text('[{"kept": true}]\n')
    result = aifd_convert("Log", cwd=tmp_path)
    assert result.returncode != 0
    assert "no chat log files" in result.stderr and "LOG_CHAT" in result.stderr
    assert str(tmp_path.resolve() / "Log" / "chat") in result.stderr
    assert output.read_text() == '[{"kept": true}]\n'


def test_output_to_stdout(tmp_path: Path) -> None:
    write_log(tmp_path / "Log", "openai", "a.jsonl", [record("2024-05-01T00:00:00+00:00", n=1)])
    result = aifd_convert("-o", "-", cwd=tmp_path)
    assert result.returncode == 0
    assert [r["n"] for r in json.loads(result.stdout)] == [1]
    assert "to stdout" in result.stderr


def test_large_logs_show_a_progress_bar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [record(f"2024-05-01T00:00:{i:02d}+00:00", text="x" * 1000) for i in range(50)]
    write_log(tmp_path / "Log", "openai", "a.jsonl", lines)
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    monkeypatch.setattr(convert_module, "PROGRESS_FROM", 10_000)
    result = convert(tmp_path / "Log", tmp_path / "out.json", console=console)
    assert len(result.records) == 50
    assert "reading chat logs" in screen.getvalue()
