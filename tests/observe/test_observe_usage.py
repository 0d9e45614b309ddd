"""Usage-only observation: the usage of a stream, however it is cut, without decoding it all."""

from __future__ import annotations

import orjson
import pytest

from ai_forward.observe.reply import ResponseObserver
from ai_forward.observe.usage import (
    JSONUsageReader,
    RawStreamObserver,
    TailUsageObserver,
    UsageObserver,
    last_usage,
    observer_for,
    tail_observer,
)
from tests.fakes import chunk

USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}


def stream(separator: bytes = b"\n\n", spaced: bool = False, usage: bool = True) -> bytes:
    events = [chunk(role="assistant", content=""), chunk("Hel"), chunk('lo "you"')]
    if usage:
        events.append({"id": "c", "choices": [], "usage": USAGE})
    dump = (lambda p: orjson.dumps(p).replace(b'":', b'": ')) if spaced else orjson.dumps
    body = b"".join(b"data: " + dump(e) + separator for e in events)
    return body + b"data: [DONE]" + separator


def observe(body: bytes, cut: int) -> UsageObserver:
    observer = UsageObserver()
    for i in range(0, len(body), cut):
        observer.feed(body[i : i + cut])
    return observer


@pytest.mark.parametrize("cut", [1, 5, 33, 100, 10_000])
@pytest.mark.parametrize("separator", [b"\n\n", b"\r\n\r\n"])
def test_usage_is_found_wherever_the_stream_is_cut(cut: int, separator: bytes) -> None:
    observer = observe(stream(separator), cut)
    assert observer.result() == {"usage": USAGE}


@pytest.mark.parametrize("cut", [1, 5, 33, 100, 10_000])
@pytest.mark.parametrize("separator", [b"\n\n", b"\r\n\r\n"])
def test_without_usage_the_generated_text_is_measured_wherever_the_stream_is_cut(
    cut: int, separator: bytes
) -> None:
    observer = observe(stream(separator, usage=False), cut)
    assert observer.result() is None
    assert observer.chars == len('Hello \\"you\\"')


def test_generated_text_is_measured_in_loosely_formatted_json_too() -> None:
    observer = observe(stream(spaced=True, usage=False), 7)
    assert observer.result() is None
    assert observer.chars == len('Hello \\"you\\"')


def test_a_stream_longer_than_the_hold_is_read_in_blocks() -> None:
    text = b"".join(b"data: " + orjson.dumps(chunk("abcd")) + b"\n\n" for _ in range(20))
    observer = UsageObserver()
    observer.hold = 300  # a few events: the rest is read in blocks as it comes
    for _ in range(10):
        observer.feed(text)
        assert observer._size <= 300 + len(text)
    assert observer.result() is None
    assert observer.chars == 4 * 20 * 10
    observer = UsageObserver()
    observer.hold = 300
    observer.feed(text)
    observer.feed(stream())
    assert observer.result() == {"usage": USAGE}


@pytest.mark.parametrize("end", [b"", b'data: {"cut'])
def test_a_raw_stream_is_kept_as_it_came_unless_too_large(end: bytes) -> None:
    body = stream() + end
    observer = RawStreamObserver()
    for i in range(0, len(body), 17):
        observer.feed(body[i : i + 17])
    assert observer.result() == {"usage": USAGE}
    assert observer.raw == body
    observer = RawStreamObserver()
    observer.hold = 100
    for i in range(0, len(body), 17):
        observer.feed(body[i : i + 17])
    assert observer.result() == {"usage": USAGE}
    assert observer.raw is None


def test_full_reassembly_when_asked_and_usage_only_otherwise() -> None:
    assert isinstance(observer_for("text/event-stream", True, True), RawStreamObserver)
    assert isinstance(observer_for("application/json", True, False), ResponseObserver)
    assert isinstance(observer_for("application/json", False, True), JSONUsageReader)
    assert isinstance(observer_for("text/event-stream", False, True), UsageObserver)
    assert observer_for("text/event-stream", False, False) is None


def test_usage_only_reads_the_usage_object_and_counts_text_when_none_came() -> None:
    reply = {"id": "c", "choices": [{"message": {"content": "four"}}], "usage": USAGE}
    body = orjson.dumps(reply)
    reader = observer_for("application/json", False, True)
    assert isinstance(reader, JSONUsageReader)
    for i in range(0, len(body), 7):
        reader.feed(body[i : i + 7])
    assert reader.result() == {"usage": USAGE}
    # No usage reported: the whole reply, whose text the limits then count.
    bare = {"id": "c", "choices": [{"message": {"content": "four"}}]}
    reader = JSONUsageReader()
    reader.feed(orjson.dumps(bare))
    assert reader.result() == bare
    assert JSONUsageReader().result() is None


def test_token_counts_only_read_the_usage_at_the_end_of_a_json_reply() -> None:
    usage = {**USAGE, "prompt_tokens_details": {"cached_tokens": 2}}
    reply = {"id": "c", "choices": [{"message": {"content": 'say "usage": {}'}}], "usage": usage}
    body = orjson.dumps({**reply, "system_fingerprint": "fp"})
    observer = observer_for("application/json", False, False, True)
    assert isinstance(observer, TailUsageObserver)
    for i in range(0, len(body), 100):
        observer.feed(body[i : i + 100])
    assert observer.result() == {"usage": usage}
    assert last_usage(orjson.dumps({"choices": []})) is None
    assert last_usage(b'{"usage": {"prompt_tokens": 1') is None


@pytest.mark.parametrize("cut", [40, 100, 10_000])
def test_token_counts_of_a_stream_read_its_last_usage_object_only(cut: int) -> None:
    nulls = b"".join(
        b"data: " + orjson.dumps({**chunk(text), "usage": None}) + b"\n\n" for text in "abc"
    )
    body = nulls + stream()  # every event `"usage":null`, then the usage-only one
    observer = observer_for("text/event-stream", False, False, True)
    assert isinstance(observer, TailUsageObserver)
    for i in range(0, len(body), cut):
        observer.feed(body[i : i + cut])
    assert observer.result() == {"usage": USAGE}
    observer = tail_observer()
    observer.feed(nulls + b"data: [DONE]\n\n")
    assert observer.result() is None


def test_token_counts_alone_read_nothing_of_a_reply_neither_json_nor_a_stream() -> None:
    assert observer_for("audio/mpeg", False, False, True) is None
    assert observer_for("application/json; charset=utf-8", False, False, True) is not None
