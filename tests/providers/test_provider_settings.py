"""Provider settings: validated at start-up with messages that name the variable."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ai_forward.settings import Settings, SettingsError
from tests.fakes import FakeUpstream, ProxyServer
from tests.providers.fakes import HI, client


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MODEL_ROUTES": "llama*=nowhere"}, "MODEL_ROUTES"),
        ({"MODEL_ROUTES": "claude-*"}, "MODEL_ROUTES"),
        ({"AZURE_OPENAI_ENDPOINT": "https://a,https://b", "AZURE_OPENAI_API_KEY": "k"},
         "AZURE_OPENAI_API_KEY"),
        ({"AZURE_OPENAI_ENDPOINT": "not a url"}, "AZURE_OPENAI_ENDPOINT"),
        ({"HOST_ALLOWLIST": "api.groq.com", "HOST_KEYS": "api.other.com=k"}, "HOST_KEYS"),
        ({"HOST_ALLOWLIST": "api.groq.com/openai"}, "HOST_ALLOWLIST"),
        ({"ANTHROPIC_BASE_URL": "ftp://x"}, "ANTHROPIC_BASE_URL"),
        ({"ANTHROPIC_MAX_TOKENS": "0"}, "ANTHROPIC_MAX_TOKENS"),
    ],
)  # fmt: skip
def test_bad_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_defaults_route_claude_and_gemini_only_when_they_have_keys() -> None:
    assert Settings.from_env({}).providers.model_routes == ()
    routes = Settings.from_env(
        {
            "ANTHROPIC_API_KEY": "k",
            "MODEL_ROUTES": "llama*=localai",
            "EXTRA_BASE_URL": "http://x",
            "EXTRA_ROUTE_PREFIX": "/localai",
        }
    )
    assert routes.providers.model_routes == (("llama*", "localai"), ("claude-*", "anthropic"))


def test_provider_keys_count_as_real_keys_for_the_open_access_refusal() -> None:
    for env in ({"ANTHROPIC_API_KEY": "k"}, {"GEMINI_API_KEY": "k"},
                {"AZURE_OPENAI_ENDPOINT": "https://a", "AZURE_OPENAI_API_KEY": "k"},
                {"HOST_ALLOWLIST": "api.groq.com", "HOST_KEYS": "api.groq.com=k"}):  # fmt: skip
        settings = Settings.from_env(env)
        assert settings.has_real_keys
        assert settings.open_access_problem() is not None
    assert "sk-ant" not in repr(Settings.from_env({"ANTHROPIC_API_KEY": "sk-ant-x"}))


def test_extra_route_name_is_an_openai_compatible_provider(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real-1",
        FORWARD_KEY="fk-test",
        EXTRA_BASE_URL=providers.url,
        EXTRA_ROUTE_PREFIX="/localai",
        EXTRA_API_KEY="lk-1",
        MODEL_ROUTES="llama*=localai",
    )
    reply = client(proxy).chat.completions.create(model="llama3", messages=HI, temperature=0.1)
    assert reply.choices[0].message.content == "Hello!"
    seen = providers.last
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer lk-1"
    assert seen.json() == {"model": "llama3", "messages": HI, "temperature": 0.1}
    assert upstream.requests == []


def test_base_urls_are_normalised() -> None:
    settings = Settings.from_env(
        {"GEMINI_BASE_URL": "https://gemini.example", "ANTHROPIC_BASE_URL": "https://a.example/v1"}
    ).providers
    assert settings.gemini_base_url == "https://gemini.example/v1beta"
    assert settings.anthropic_base_url == "https://a.example"
