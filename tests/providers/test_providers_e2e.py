"""End to end: the openai SDK through the real gateway to fake Anthropic, Gemini and Azure."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.fakes import FakeUpstream, ProxyServer
from tests.providers.fakes import HI, client, env, failing

IMAGE = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()


def secrets_absent(text: str) -> None:
    for secret in ("sk-ant-1", "sk-ant-2", "AIza-1", "az-1", "sk-real-1"):
        assert secret not in text


def test_anthropic_chat_with_keys_in_anthropic_headers(
    providers: FakeUpstream, upstream: FakeUpstream, proxy: ProxyServer
) -> None:
    sdk = client(proxy)
    reply = sdk.chat.completions.create(model="claude-sonnet-4-5", messages=HI)
    assert reply.choices[0].message.content == "Hi from Claude"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.prompt_tokens == 11
    sdk.chat.completions.create(model="claude-sonnet-4-5", messages=HI)
    seen = providers.requests
    assert [r.path for r in seen] == ["/v1/messages"] * 2
    assert [r.headers["x-api-key"] for r in seen] == ["sk-ant-1", "sk-ant-2"]
    assert seen[0].headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen[0].headers
    assert "fk-test" not in str(seen[0].raw_headers)
    messages = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert seen[0].json() == {
        "model": "claude-sonnet-4-5",
        "messages": messages,
        "max_tokens": 4096,
    }
    assert upstream.requests == []


def test_anthropic_tools_and_images(providers: FakeUpstream, proxy: ProxyServer) -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    content: Any = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": IMAGE}},
    ]
    reply = client(proxy).chat.completions.create(
        model="claude-sonnet-4-5",
        messages=[{"role": "user", "content": content}],
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert (call.function.name, orjson.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    sent = providers.last.json()
    assert sent["tool_choice"] == {"type": "tool", "name": "get_weather"}
    image = sent["messages"][0]["content"][1]
    assert image["source"]["type"] == "base64"
    assert image["source"]["media_type"] == "image/png"


def test_anthropic_stream_with_usage(providers: FakeUpstream, proxy: ProxyServer) -> None:
    stream = client(proxy).chat.completions.create(
        model="claude-sonnet-4-5",
        messages=HI,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, args, finish, usage = "", "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or ():
                args += (call.function.arguments if call.function else "") or ""
            finish = choice.finish_reason or finish
    assert text == "Okay, let's check the weather."
    assert orjson.loads(args) == {"city": "San Francisco"}
    assert finish == "tool_calls"
    assert usage is not None and usage.completion_tokens == 89 and usage.prompt_tokens == 572
    assert providers.last.json()["stream"] is True


def test_gemini_key_in_header_never_in_url(providers: FakeUpstream, proxy: ProxyServer) -> None:
    sdk = client(proxy)
    reply = sdk.chat.completions.create(model="gemini-2.0-flash", messages=HI, temperature=0.5)
    assert reply.choices[0].message.content == "Hi from Gemini"
    seen = providers.last
    assert seen.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert seen.query == ""
    assert seen.headers["x-goog-api-key"] == "AIza-1"
    assert seen.json()["generationConfig"] == {"temperature": 0.5}
    chunks = list(sdk.chat.completions.create(model="gemini-2.0-flash", messages=HI, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "The sky is blue."
    )
    assert providers.last.path.endswith(":streamGenerateContent")
    assert providers.last.query == "alt=sse"
    assert all("AIza" not in r.query for r in providers.requests)


def test_azure_deployment_url_api_version_and_api_key(
    providers: FakeUpstream, proxy: ProxyServer
) -> None:
    sdk = client(proxy)
    reply = sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HI)
    assert reply.choices[0].message.content == "Hello!"
    seen = providers.last
    assert seen.path == "/openai/deployments/gpt-35-turbo/chat/completions"
    assert seen.query == "api-version=2024-10-21"
    assert seen.headers["api-key"] == "az-1"
    assert "authorization" not in seen.headers
    chunks = list(sdk.chat.completions.create(model="gpt-35-turbo-16k", messages=HI, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello!"
    assert providers.last.path == "/openai/deployments/gpt-35-turbo-16k/chat/completions"


def test_other_models_still_go_to_the_route_upstream(
    upstream: FakeUpstream, providers: FakeUpstream, proxy: ProxyServer
) -> None:
    client(proxy).chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert upstream.last.headers["authorization"] == "Bearer sk-real-1"
    assert providers.requests == []


def test_client_own_key_is_relayed_in_the_provider_header(
    providers: FakeUpstream, proxy: ProxyServer
) -> None:
    client(proxy, key="sk-ant-clients-own").chat.completions.create(
        model="claude-3-5-haiku-latest", messages=HI
    )
    assert providers.last.headers["x-api-key"] == "sk-ant-clients-own"


@pytest.mark.parametrize(
    ("model", "status", "body", "error", "code"),
    [
        (
            "claude-sonnet-4-5",
            429,
            {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}},
            openai.RateLimitError,
            429,
        ),
        (
            "claude-sonnet-4-5",
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            openai.InternalServerError,
            503,
        ),
        (
            "claude-sonnet-4-5",
            401,
            {"type": "error", "error": {"type": "authentication_error", "message": "bad key"}},
            openai.AuthenticationError,
            401,
        ),
        (
            "gemini-2.0-flash",
            400,
            {"error": {"code": 400, "message": "bad arg", "status": "INVALID_ARGUMENT"}},
            openai.BadRequestError,
            400,
        ),
    ],
)
def test_provider_errors_become_openai_errors(
    providers: FakeUpstream,
    proxy: ProxyServer,
    model: str,
    status: int,
    body: Any,
    error: type[openai.APIStatusError],
    code: int,
) -> None:
    providers.handler = failing(status, body)
    with pytest.raises(error) as caught:
        client(proxy).chat.completions.create(model=model, messages=HI)
    assert caught.value.status_code == code
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["message"].startswith(
        model.split("-")[0].replace("claude", "anthropic")
    )
    secrets_absent(str(caught.value.body))


def test_unsupported_feature_is_a_400_naming_field_and_provider(
    providers: FakeUpstream, proxy: ProxyServer
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(proxy).chat.completions.create(
            model="claude-sonnet-4-5", messages=HI, response_format={"type": "json_object"}
        )
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "unsupported"
    assert caught.value.body["param"] == "response_format"
    assert "anthropic" in caught.value.body["message"]
    response = httpx.post(
        proxy.url + "/v1/embeddings",
        json={"model": "claude-sonnet-4-5", "input": "x"},
        headers={"authorization": "Bearer fk-test"},
    )
    assert response.status_code == 400
    assert "chat/completions" in response.json()["error"]["message"]
    assert providers.requests == []


def test_upstream_unreachable_names_the_provider(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    proxy = proxy_factory(**env(upstream, providers, ANTHROPIC_BASE_URL="http://127.0.0.1:9"))
    with pytest.raises(openai.APIStatusError) as caught:
        client(proxy).chat.completions.create(model="claude-sonnet-4-5", messages=HI)
    assert caught.value.status_code == 502
    assert "anthropic" in str(caught.value.body)


def test_models_merge_route_list_with_providers(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    proxy = proxy_factory(**env(providers, providers, AZURE_OPENAI_DEPLOYMENTS="gpt-4o-deploy"))
    ids = [m.id for m in client(proxy).models.list()]
    assert ids[0] == "gpt-4o"
    assert "claude-sonnet-4-5" in ids and "gemini-2.5-flash" in ids
    assert "gpt-3.5-turbo" in ids and "gpt-4o-deploy" in ids
    assert providers.last.headers["authorization"] == "Bearer sk-real-1"
    down = proxy_factory(**env(upstream, providers, OPENAI_BASE_URL="http://127.0.0.1:9"))
    ids = [m.id for m in client(down).models.list()]
    assert "gpt-4o" not in ids and "claude-sonnet-4-5" in ids


def test_azure_resources_are_used_in_turn(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    other = FakeUpstream().start()
    try:
        proxy = proxy_factory(
            **env(
                upstream,
                providers,
                AZURE_OPENAI_ENDPOINT=f"{providers.url},{other.url}",
                AZURE_OPENAI_API_KEY="az-1,az-2a|az-2b",
                AZURE_OPENAI_DEPLOYMENTS="gpt-35-turbo,gpt-35-turbo|gpt-4o",
            )
        )
        sdk = client(proxy)
        for _ in range(4):
            sdk.chat.completions.create(model="gpt-3.5-turbo", messages=HI)
        assert [r.headers["api-key"] for r in providers.requests] == ["az-1", "az-1"]
        assert [r.headers["api-key"] for r in other.requests] == ["az-2a", "az-2b"]
        with pytest.raises(openai.BadRequestError):
            sdk.chat.completions.create(model="gpt-35-unknown", messages=HI)
    finally:
        other.stop()
