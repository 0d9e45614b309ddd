"""Malformed chat bodies for translated models: a 400 in OpenAI's shape naming the field,
never a plain-text 500, and nothing sent to the provider."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.fakes import FakeUpstream, ProxyServer, Recorded
from tests.providers.fakes import HI

CALL = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
# (what is wrong, the body's fields, the param the 400 names)
MALFORMED: list[tuple[str, dict[str, Any], str]] = [
    ("content 123", {"messages": [{"role": "user", "content": 123}]}, "messages[0].content"),
    ("part not an object", {"messages": [{"role": "user", "content": [5]}]},
     "messages[0].content[0]"),
    ("text part 5", {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
     "messages[0].content[0].text"),
    ("image url 5", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": 5}}]}]}, "messages[0].content[0].image_url.url"),
    ("tools x", {"messages": HI, "tools": "x"}, "tools"),
    ("tools [5]", {"messages": HI, "tools": [5]}, "tools[0]"),
    ("tool function x", {"messages": HI, "tools": [{"type": "function", "function": "x"}]},
     "tools[0].function"),
    ("stop 5", {"messages": HI, "stop": 5}, "stop"),
    ("stop [5]", {"messages": HI, "stop": [5]}, "stop"),
    ("tool_calls x", {"messages": [*HI, {"role": "assistant", "tool_calls": "x"}]},
     "messages[1].tool_calls"),
    ("tool_calls [5]", {"messages": [*HI, {"role": "assistant", "tool_calls": [5]}]},
     "messages[1].tool_calls[0]"),
    ("tool call function x", {"messages": [*HI, {"role": "assistant", "tool_calls": [
        {**CALL[0], "function": "x"}]}]}, "messages[1].tool_calls[0].function"),
    ("messages an object", {"messages": {"role": "user"}}, "messages"),
    ("message 5", {"messages": [5]}, "messages[0]"),
    ("role 5", {"messages": [{"role": 5, "content": "hi"}]}, "messages[0].role"),
    ("tool_choice function x",
     {"messages": HI, "tool_choice": {"type": "function", "function": "x"}}, "tool_choice"),
    ("max_tokens text", {"messages": HI, "max_tokens": "lots"}, "max_tokens"),
    ("temperature true", {"messages": HI, "temperature": True}, "temperature"),
    ("stream text", {"messages": HI, "stream": "yes"}, "stream"),
    ("json_schema x",
     {"messages": HI, "response_format": {"type": "json_schema", "json_schema": "x"}},
     "response_format.json_schema"),
]  # fmt: skip


def chat(proxy: ProxyServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        proxy.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": "Bearer fk-test"},
        timeout=10,
    )


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "gemini-2.5-flash"])
@pytest.mark.parametrize(("case", "fields", "param"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_body_is_400_naming_the_field(
    providers: FakeUpstream,
    proxy: ProxyServer,
    model: str,
    case: str,
    fields: dict[str, Any],
    param: str,
) -> None:
    response = chat(proxy, {"model": model, **fields})
    assert response.status_code == 400, f"{case}: {response.text}"
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert f"'{param}'" in error["message"]
    assert providers.requests == []


def test_malformed_body_for_one_model_of_a_fan_out_is_400(
    providers: FakeUpstream, upstream: FakeUpstream, proxy: ProxyServer
) -> None:
    response = chat(proxy, {"model": "gpt-4o-mini,claude-sonnet-4-5", "messages": HI, "stop": 5})
    assert response.status_code == 400 and response.json()["error"]["param"] == "stop"
    assert providers.requests == [] and upstream.requests == []


def test_stream_the_translator_cannot_read_ends_with_an_error_event(
    providers: FakeUpstream, proxy: ProxyServer
) -> None:
    async def odd_stream(request: web.Request, rec: Recorded) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"type": "content_block_delta", "delta": "not an object"}\n\n')
        await response.write_eof()
        return response

    providers.handler = odd_stream
    body = {"model": "claude-sonnet-4-5", "messages": HI, "stream": True}
    with httpx.stream(
        "POST",
        proxy.url + "/v1/chat/completions",
        json=body,
        headers={"authorization": "Bearer fk-test"},
        timeout=10,
    ) as response:
        text = response.read().decode()
    assert response.status_code == 200
    assert '"code":"stream_broken"' in text and "documented format" in text
    assert text.endswith("data: [DONE]\n\n")
