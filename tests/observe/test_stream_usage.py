"""Streams get usage for the gateway's needs; the client sees the stream it asked for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ai_forward.observe.stream_usage import drop_usage_chunk

USAGE = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'
TEXT = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
DONE = b"data: [DONE]\n\n"


def collect(chunks: list[bytes]) -> bytes:
    async def source() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def run() -> bytes:
        return b"".join([c async for c in drop_usage_chunk(source())])

    return asyncio.run(run())


@pytest.mark.parametrize("cut", [1, 7, 40, 80, len(TEXT) + 5])
def test_usage_only_event_is_dropped_wherever_chunks_are_cut(cut: int) -> None:
    stream = TEXT + USAGE + DONE
    chunks = [stream[i : i + cut] for i in range(0, len(stream), cut)]
    assert collect(chunks) == TEXT + DONE


def test_events_with_choices_and_usage_are_kept() -> None:
    both = b'data: {"choices":[{"index":0,"delta":{}}],"usage":{"total_tokens":1}}\n\n'
    assert collect([TEXT, both, DONE]) == TEXT + both + DONE


def test_usage_null_in_every_chunk_is_not_usage() -> None:
    # OpenAI puts "usage":null in every chunk once include_usage is on; they all stay.
    text = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n'
    assert collect([text, text, USAGE, DONE]) == text + text + DONE


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_a_long_run_of_events_loses_only_its_usage_chunk(newline: bytes) -> None:
    def lines(event: bytes) -> bytes:
        return event.replace(b"\n", newline)

    text, usage, done = lines(TEXT), lines(USAGE), lines(DONE)
    assert collect([text * 50 + usage + done]) == text * 50 + done
    assert collect([usage + text * 3]) == text * 3
