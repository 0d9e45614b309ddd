"""Chat logs under `aifd run`: SIGTERM loses nothing, kill -9 leaves readable files."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import openai
from aiohttp import web

from tests.chatlog.fakes import log_files, read_records
from tests.fakes import FakeUpstream, Recorded, chunk, sse, stream_response
from tests.processes import AIFD, aifd_instance, clean_env

# `aifd` subprocesses must import this checkout, not whichever one is installed.
ROOT = str(Path(__file__).resolve().parents[2])


def slow_stream_upstream() -> FakeUpstream:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        said = rec.json()["messages"][0]["content"]
        events = sse(
            chunk(said, role="assistant"), *(chunk(".") for _ in range(8)), chunk(finish="stop")
        )
        return await stream_response(request, events, delay=0.15)

    fake = FakeUpstream()
    fake.handler = handler
    return fake.start()


async def streams(url: str, count: int, started: asyncio.Event) -> list[str]:
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="fk", max_retries=0)
    first: list[int] = []

    async def one(i: int) -> str:
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"live {i}"}], stream=True
        )
        text = ""
        async for part in stream:
            if not text:
                first.append(i)
                if len(first) == count:
                    started.set()
            text += part.choices[0].delta.content or ""
        return text

    try:
        return await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        await client.close()


def test_sigterm_during_live_streams_loses_no_record(tmp_path: Path) -> None:
    upstream = slow_stream_upstream()
    env = {
        "OPENAI_BASE_URL": upstream.url,
        "FORWARD_KEY": "fk",
        "OPENAI_API_KEY": "sk-live",
        "LOG_CHAT": "true",
        "ACCESS_LOG": "false",
        "PYTHONPATH": ROOT,
    }
    count = 24
    try:
        with aifd_instance(env, tmp_path, workers=2) as (url, proc):

            async def main() -> list[str]:
                started = asyncio.Event()
                task = asyncio.ensure_future(streams(url, count, started))
                await asyncio.wait_for(started.wait(), 10)
                proc.send_signal(signal.SIGTERM)
                return await task

            texts = asyncio.run(main())
            assert proc.wait(20) == 0
    finally:
        upstream.stop()
    assert sorted(texts) == sorted(f"live {i}........" for i in range(count))
    records = read_records(tmp_path / "Log")
    assert len(records) == count
    assert all(r["complete"] for r in records)
    replies = sorted(r["reply"]["choices"][0]["message"]["content"] for r in records)
    assert replies == sorted(texts)
    # Each worker writes its own file (which worker gets a connection is up to the kernel).
    names = [p.name for p in log_files(tmp_path / "Log")]
    pids = {name.split("-p")[1].split("-")[0] for name in names}
    assert 1 <= len(pids) == len(names) <= 2


def test_kill_9_leaves_readable_files_missing_at_most_the_last_second(tmp_path: Path) -> None:
    upstream = FakeUpstream().start()
    env = {
        "OPENAI_BASE_URL": upstream.url,
        "LOG_CHAT": "true",
        "LOG_DIR": "logs",
        "PYTHONPATH": ROOT,
    }
    try:
        with aifd_instance(env, tmp_path) as (url, proc):
            client = openai.OpenAI(base_url=url + "/v1", api_key="sk-x", max_retries=0)
            for i in range(30):
                client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": str(i)}]
                )
            time.sleep(1.2)
            proc.kill()
            proc.wait(5)
    finally:
        upstream.stop()
    records = read_records(tmp_path / "logs")
    assert sorted(int(r["messages"][0]["content"]) for r in records) == list(range(30))


def test_unwritable_log_dir_stops_start_up_naming_it(tmp_path: Path) -> None:
    (tmp_path / "Log").write_text("a file where the log folder should be")
    result = subprocess.run(
        [*AIFD, "run", "--host", "127.0.0.1", "--port", "0", "--log-chat"],
        cwd=tmp_path,
        env=clean_env(OPENAI_BASE_URL="http://127.0.0.1:9", PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "LOG_DIR='Log': cannot write chat logs to Log/chat (Not a directory)" in output
