"""Golden transcripts in each provider's documented format, through the pure translators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from ai_forward.errors import UnsupportedFeature
from ai_forward.observe.reply import ReplyAssembler
from ai_forward.origin import Origin
from ai_forward.providers.base import Endpoint, translate_error
from ai_forward.providers.registry import registry
from ai_forward.providers.settings import ProviderSettings
from ai_forward.sse import SSEDecoder

DATA = Path(__file__).parent / "data"
PROVIDERS = registry(ProviderSettings().anthropic_version)


def load(name: str) -> Any:
    return orjson.loads((DATA / name).read_bytes())


def run_stream(provider: str, name: str, chunk_size: int, usage: bool = True) -> tuple[Any, bytes]:
    translator = PROVIDERS[provider].stream("requested-model", usage)
    raw = (DATA / name).read_bytes()
    out = b"".join(translator.feed(raw[i : i + chunk_size]) for i in range(0, len(raw), chunk_size))
    out += translator.close()
    assembler = ReplyAssembler()
    for _, data in SSEDecoder().feed(out):
        assembler.add_event(data)
    assert assembler.done
    return assembler.result(), out


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_request_with_system_images_tools_and_tool_results(provider: str) -> None:
    body = load("chat_tools.openai.json")
    if provider == "gemini":
        body["model"] = "gemini-2.5-flash"
    built = PROVIDERS[provider].build(body, Endpoint(Origin("https://up.example"), key="k-1"))
    assert orjson.loads(built.body) == load(f"chat_tools.{provider}.json")
    assert "k-1" not in str(built.url)


def test_anthropic_request_url_headers_and_default_max_tokens() -> None:
    body = {"model": "claude-3-5-haiku-latest", "messages": [{"role": "user", "content": "hi"}]}
    built = PROVIDERS["anthropic"].build(
        body, Endpoint(Origin("https://a.example"), key="sk-ant", max_tokens=77)
    )
    assert str(built.url) == "https://a.example/v1/messages"
    headers = dict(built.headers)
    assert headers[b"x-api-key"] == b"sk-ant"
    assert headers[b"anthropic-version"] == b"2023-06-01"
    assert orjson.loads(built.body)["max_tokens"] == 77


def test_gemini_key_goes_in_header_never_in_url_and_stream_uses_sse() -> None:
    body = {
        "model": "gemini-2.0-flash",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    built = PROVIDERS["gemini"].build(
        body, Endpoint(Origin("https://g.example/v1beta"), key="AIza-secret")
    )
    assert (
        str(built.url)
        == "https://g.example/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    )
    assert dict(built.headers)[b"x-goog-api-key"] == b"AIza-secret"
    assert "AIza" not in str(built.url)


def test_gemini_json_mode_and_schema() -> None:
    messages = [{"role": "user", "content": "hi"}]
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    for fmt, expected in [
        ({"type": "json_object"}, {"responseMimeType": "application/json"}),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
            {"responseMimeType": "application/json", "responseJsonSchema": schema},
        ),
    ]:
        body = {"model": "gemini-2.0-flash", "messages": messages, "response_format": fmt}
        built = PROVIDERS["gemini"].build(body, Endpoint(Origin("https://g")))
        assert orjson.loads(built.body)["generationConfig"] == expected


def test_azure_url_has_deployment_and_api_version_and_api_key_header() -> None:
    body = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]}
    endpoint = Endpoint(
        Origin("https://res.openai.azure.com"),
        key="az-key",
        deployment="gpt-35-turbo",
        api_version="2024-10-21",
    )
    built = PROVIDERS["azure"].build(body, endpoint)
    assert str(built.url) == (
        "https://res.openai.azure.com/openai/deployments/gpt-35-turbo/chat/completions"
        "?api-version=2024-10-21"
    )
    assert dict(built.headers)[b"api-key"] == b"az-key"
    assert orjson.loads(built.body) == body


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_reply_translation(provider: str) -> None:
    out = orjson.loads(
        PROVIDERS[provider].translate_reply((DATA / f"{provider}_reply.json").read_bytes(), "m")
    )
    assert isinstance(out.pop("created"), int)
    assert out == load(f"{provider}_reply.openai.json")


@pytest.mark.parametrize("chunk_size", [1, 7, 100_000])
@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_stream_translation_event_by_event(provider: str, chunk_size: int) -> None:
    result, out = run_stream(provider, f"{provider}_stream.sse", chunk_size)
    expected = load(f"{provider}_stream.openai.json")
    for key in ("created", "object", "system_fingerprint"):
        result.pop(key, None)
    assert result == expected
    assert out.endswith(b"data: [DONE]\n\n")
    assert out.count(b"[DONE]") == 1


def test_stream_without_include_usage_has_no_usage_chunk() -> None:
    result, out = run_stream("anthropic", "anthropic_stream.sse", 50, usage=False)
    assert result["usage"] is None
    assert b'"usage"' not in out


def test_gemini_stream_function_call_arrives_whole() -> None:
    result, _ = run_stream("gemini", "gemini_stream_tool.sse", 13)
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Oslo"}'}
    assert call["id"]


def test_anthropic_stream_error_event_becomes_openai_error_event() -> None:
    translator = PROVIDERS["anthropic"].stream("m", False)
    raw = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","model":"c",'
        b'"usage":{"input_tokens":3}}}\n\n'
        b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", '
        b'"message": "Overloaded"}}\n\n'
    )
    out = translator.feed(raw) + translator.close()
    events = [orjson.loads(d) for _, d in SSEDecoder().feed(out) if d != b"[DONE]"]
    assert events[-1]["error"]["code"] == "overloaded"
    assert "Overloaded" in events[-1]["error"]["message"]
    assert out.endswith(b"data: [DONE]\n\n")


def test_anthropic_stream_cut_short_says_so() -> None:
    translator = PROVIDERS["anthropic"].stream("m", False)
    out = translator.feed(b'event: message_start\ndata: {"type":"message_start","message":{}}\n\n')
    out += translator.close()
    assert b"stream_broken" in out


def anthropic_error(kind: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": "details"}})


def gemini_error(code: int, status: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": "details", "status": status}})


@pytest.mark.parametrize(
    ("provider", "status", "body", "expected_status", "kind"),
    [
        ("anthropic", 401, anthropic_error("authentication_error"), 401, "authentication_error"),
        ("anthropic", 429, anthropic_error("rate_limit_error"), 429, "rate_limit_exceeded"),
        ("anthropic", 529, anthropic_error("overloaded_error"), 503, "server_error"),
        ("gemini", 400, gemini_error(400, "INVALID_ARGUMENT"), 400, "invalid_request_error"),
        ("gemini", 429, gemini_error(429, "RESOURCE_EXHAUSTED"), 429, "rate_limit_exceeded"),
        ("gemini", 503, gemini_error(503, "UNAVAILABLE"), 503, "server_error"),
    ],
)
def test_errors_keep_their_meaning(
    provider: str, status: int, body: bytes, expected_status: int, kind: str
) -> None:
    new_status, out = translate_error(provider, status, PROVIDERS[provider].error_message(body))
    error = orjson.loads(out)["error"]
    assert new_status == expected_status
    assert error["type"] == kind
    assert error["message"].startswith(provider + ": ")


@pytest.mark.parametrize(
    ("provider", "extra", "param"),
    [
        ("anthropic", {"response_format": {"type": "json_object"}}, "response_format"),
        ("anthropic", {"n": 2}, "n"),
        ("anthropic", {"logprobs": True}, "logprobs"),
        ("anthropic", {"seed": 3}, "seed"),
        ("anthropic", {"tools": [{"type": "web_search"}]}, "tools"),
        ("gemini", {"logit_bias": {"1": 2}}, "logit_bias"),
        ("gemini", {"audio": {"voice": "x"}}, "audio"),
        (
            "gemini",
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages",
        ),
    ],
)
def test_unsupported_features_are_refused_by_name(
    provider: str, extra: dict[str, Any], param: str
) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}
    with pytest.raises(UnsupportedFeature) as caught:
        PROVIDERS[provider].build(body, Endpoint(Origin("https://x")))
    assert caught.value.param == param
    assert provider in caught.value.message


def test_neutral_values_are_accepted() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "n": 1,
        "presence_penalty": 0,
        "frequency_penalty": 0,
        "logprobs": False,
        "stream_options": {"include_usage": True},
    }
    PROVIDERS["anthropic"].build(body, Endpoint(Origin("https://x")))
