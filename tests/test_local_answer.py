"""Sending a hook's answer in place of the upstream's: the headers that go with it."""

from __future__ import annotations

import asyncio

from ai_forward.exchange import Exchange, LocalAnswer
from ai_forward.local_answer import answer_locally
from ai_forward.requestwatch import REQUEST_ID
from ai_forward.settings import Route
from ai_forward.types import Message

ANSWER = LocalAnswer(
    200,
    [(b"content-type", b"application/json"), (b"content-length", b"2")],
    b"{}",
    "application/json",
)


def sent_headers(hook_headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    path = "/v1/chat/completions"
    route = Route("/", "http://upstream.invalid")
    ex = Exchange({}, route, "POST", path, path, path, b"", [], b"{}", "10.0.0.1")
    ex.request_id = "req-1"
    ex.response_headers = hook_headers
    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(message)

    asyncio.run(answer_locally(ex, ANSWER, send))
    assert messages[-1]["body"] == b"{}" and ex.outcome.complete
    headers: list[tuple[bytes, bytes]] = messages[0]["headers"]
    return headers


def test_hook_headers_follow_the_answers_own_and_the_request_id_ends_them() -> None:
    assert sent_headers([(b"x-aifd-cache", b"hit")]) == [
        *ANSWER.headers,
        (b"x-aifd-cache", b"hit"),
        (REQUEST_ID, b"req-1"),
    ]
    assert ANSWER.headers == [(b"content-type", b"application/json"), (b"content-length", b"2")]


def test_a_hook_header_replaces_the_answers_own_of_the_same_name() -> None:
    headers = sent_headers([(b"content-type", b"application/json; charset=utf-8")])
    assert headers == [
        (b"content-length", b"2"),
        (b"content-type", b"application/json; charset=utf-8"),
        (REQUEST_ID, b"req-1"),
    ]
