"""Reassembling streamed replies (observe.py) from the bytes as they arrive."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ai_forward.chatlog.reassemble import plain_chunks, reassemble, stream_data
from ai_forward.observe.reply import ReplyAssembler, ResponseObserver
from ai_forward.sse import SSEDecoder
from tests.fakes import chunk, sse


def observe(events: list[bytes], cut: int | None = None) -> dict[str, Any] | None:
    observer = ResponseObserver("text/event-stream; charset=utf-8")
    stream = b"".join(events)
    pieces = [stream] if cut is None else [stream[i : i + cut] for i in range(0, len(stream), cut)]
    for piece in pieces:
        observer.feed(piece)
    return observer.result()


@pytest.mark.parametrize("cut", [None, 1, 5, 33])
def test_first_chunk_counts_wherever_bytes_are_cut(cut: int | None) -> None:
    events = sse(chunk("Hi", role="assistant"), chunk(" there"), chunk(finish="stop"))
    reply = observe(events, cut)
    assert reply is not None
    assert reply["choices"] == [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "Hi there"},
        }
    ]


def test_tool_calls_without_an_index_are_told_apart_by_id() -> None:
    def call(**fields: Any) -> dict[str, Any]:
        return chunk(tool_calls=[fields])

    events = sse(
        call(id="a", type="function", function={"name": "f", "arguments": '{"x"'}),
        call(function={"arguments": ": 1}"}),
        call(id="b", type="function", function={"name": "g", "arguments": "{}"}),
        chunk(finish="tool_calls"),
    )
    reply = observe(events)
    assert reply is not None
    calls = reply["choices"][0]["message"]["tool_calls"]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("a", "f", '{"x": 1}'),
        ("b", "g", "{}"),
    ]


def test_malformed_chunks_are_ignored_not_fatal() -> None:
    odd: list[Any] = [
        {"choices": [{"index": 0, "delta": "not a dict"}]},
        {"choices": [{"index": "zero", "delta": {"content": "?"}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": ["nope", {"index": 0}]}}]},
    ]
    events = [b"data: {not json\n\n", *sse(*odd, chunk("ok", role="assistant"))]
    reply = observe(events)
    assert reply is not None
    assert reply["choices"][0]["message"]["content"] == "ok"


def test_error_event_is_kept() -> None:
    events = sse(chunk("par"), {"error": {"message": "overloaded", "type": "server_error"}})
    reply = observe(events)
    assert reply is not None
    assert reply["error"]["message"] == "overloaded"
    assert reply["choices"][0]["message"]["content"] == "par"


def test_responses_api_stream_keeps_the_final_response() -> None:
    final = {"id": "resp_1", "status": "completed", "output": [], "usage": {"total_tokens": 9}}
    events = [
        b"event: response.created\ndata: "
        + orjson.dumps({"type": "response.created", "response": {"id": "resp_1"}})
        + b"\n\n",
        b"event: response.output_text.delta\ndata: "
        + orjson.dumps({"type": "response.output_text.delta", "delta": "Hel"})
        + b"\n\n",
        b"event: response.output_text.delta\ndata: "
        + orjson.dumps({"type": "response.output_text.delta", "delta": "lo"})
        + b"\n\n",
        b"event: response.completed\ndata: "
        + orjson.dumps({"type": "response.completed", "response": final})
        + b"\n\n",
    ]
    reply = observe(events)
    assert reply is not None
    assert reply["id"] == "resp_1" and reply["status"] == "completed"
    assert reply["output_text"] == "Hello"
    assert reply["usage"] == {"total_tokens": 9}


def test_non_streamed_reply_is_parsed_once_whole() -> None:
    observer = ResponseObserver("application/json")
    body = orjson.dumps({"id": "x", "choices": [], "usage": {"total_tokens": 1}})
    for i in range(0, len(body), 4):
        observer.feed(body[i : i + 4])
    assert observer.result() == {"id": "x", "choices": [], "usage": {"total_tokens": 1}}


STREAMS = [
    b"".join(sse(chunk("Hi", role="assistant"), chunk(" there"), chunk(finish="stop"))),
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta"}\n\n',
    b'data: {"a":\ndata: 1}\n\n: a comment\nid: 7\ndata: [DONE]\n\n',  # data over two lines
    b'data:{"a":1}\n\n\n\ndata:  [DONE]\n',  # no space, extra blank lines, no last blank line
    b'data: {"a":1}\r\n\r\ndata: {"b":2}\r\n\r\n',  # CRLF
    b'data: {"a":1}\n\ndata: {"b": "cut',  # cut in the middle of an event
    b"event: ping\n\ndata:\n\n",  # an event without data, and empty data
]


@pytest.mark.parametrize("stream", STREAMS)
def test_whole_stream_data_is_what_the_line_decoder_reads(stream: bytes) -> None:
    decoder = SSEDecoder()
    assert stream_data(stream) == [data for _, data in decoder.feed(stream) + decoder.flush()]


@pytest.mark.parametrize("stream", STREAMS)
def test_whole_stream_reassembles_as_the_observer_does(stream: bytes) -> None:
    observer = ResponseObserver("text/event-stream")
    observer.feed(stream)
    assert reassemble(stream) == observer.result()


def test_one_event_that_is_not_json_spoils_no_other() -> None:
    events = sse(chunk("a", role="assistant"), chunk("b"))
    stream = events[0] + b"data: {not json\n\ndata: 1,2\n\n" + events[1] + b"data: [DONE]\n\n"
    reply = reassemble(stream)
    assert reply is not None
    assert reply["choices"][0]["message"]["content"] == "ab"


def event_by_event(stream: bytes) -> dict[str, Any] | None:
    """What the general reading (each event cut and decoded on its own) makes of `stream`."""
    assembler = ReplyAssembler()
    assembler.add_events(stream_data(stream))
    return assembler.result()


USUAL = b"".join(sse(chunk("Hi", role="assistant"), chunk(" there"), chunk(finish="stop")))


@pytest.mark.parametrize(
    "stream",
    [
        USUAL,
        USUAL[: -len(b"data: [DONE]\n\n")],  # cut before [DONE]
        b": keep-alive\n\n" + USUAL,  # a comment line
        USUAL.replace(b"\n\n", b"\r\n\r\n"),  # CRLF
        b"event: delta\n" + USUAL,  # a field other than data
        b"data: not json\n\n" + USUAL,  # an event that is not JSON
        b'data: {"choices":[{"index":0,"delta":{"content":"a\\n\\ndata: b"}}]}\n\n',
        b"data: [DONE]\n\n",
        b'data:{"choices":[]}\n\n',  # no space after the colon
    ],
)
def test_the_usual_stream_read_in_one_call_gives_what_reading_each_event_gives(
    stream: bytes,
) -> None:
    assert reassemble(stream) == event_by_event(stream)


def test_a_stream_of_one_data_line_per_event_is_decoded_in_one_call() -> None:
    assert plain_chunks(USUAL) is not None and len(plain_chunks(USUAL) or []) == 3
    assert plain_chunks(b": keep-alive\n\n" + USUAL) is None
    assert plain_chunks(USUAL.replace(b"\n\n", b"\r\n\r\n")) is None
