"""openai-forward 0.8's own configuration files, as its users have them, served over real
sockets: routes, forward keys swapped by level, model levels, rate limits and TIMEOUT."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest
from aiohttp import web
from dotenv import dotenv_values

from tests.fakes import FakeUpstream, ProxyServer, Recorded, chunk, sse
from tests.fakes import stream_response as fake_stream

# The shape of openai-forward 0.8's .env.example, its level lines uncommented; the
# upstream URLs are the test's fakes, the limits small enough to reach.
ENV_EXAMPLE = """
LOG_GENERAL=false
LOG_OPENAI=false
CACHE_GENERAL=false
CHAT_COMPLETION_ROUTE=/v1/chat/completions
BENCHMARK_MODE=true
FORWARD_CONFIG=[{{"base_url":"{openai}","route":"/","type":"openai"}},{{"base_url":"{general}","route":"/gemini","type":"general"}}]
LEVEL_MODELS={{"1": ["gpt-4"], "2": ["gpt-3.5-turbo"]}}
OPENAI_API_KEY_CONFIG={{"sk-level0-key": [0], "sk-level1-key": [1], "sk-level12-key": [1,2]}}
FORWARD_KEY_CONFIG={{"fk-zero-key": 0, "fk-one-key": 1, "fk-two-key": 2}}
REQ_RATE_LIMIT='{{
"/gemini/v1beta/models": "2/minute",
"/v1/embeddings": "3/minute"
}}'
GLOBAL_RATE_LIMIT=inf
RATE_LIMIT_STRATEGY=fixed-window
TOKEN_RATE_LIMIT={{"/v1/chat/completions":"2000/second"}}
TIMEOUT=10
ITER_CHUNK_TYPE=efficiency
WEBUI_RESTART_PORT=15555
WEBUI_LOG_PORT=15556
DEFAULT_STREAM_RESPONSE=true
TZ=Asia/Shanghai
"""

# The shape of the .env openai-forward's repository ships (level form of the limits).
REPO_ENV = """
LOG_GENERAL=true
LOG_OPENAI=true
CACHE_ROUTES=["/v1/chat/completions","/v1/embeddings"]
DEFAULT_REQUEST_CACHING_VALUE=false
FORWARD_CONFIG=[{{"base_url":"{openai}","route":"/","type":"openai"}}]
OPENAI_API_KEY_CONFIG={{"sk-repo-real-key": [0]}}
FORWARD_KEY_CONFIG={{"fk-repo-key": 0, "default": 0}}
REQ_RATE_LIMIT='{{
"/v1/chat/completions":[{{"level":0,"limit":"2/2minutes"}}],
"/v1/completions":[{{"level":0,"limit":"60/minute;600/hour"}}]
}}'
GLOBAL_RATE_LIMIT=200/minute
RATE_LIMIT_STRATEGY=moving-window
TOKEN_RATE_LIMIT='{{
"/v1/chat/completions":[{{"level":0,"limit":"600/second"}}],
"/v1/completions":[{{"level":0,"limit":"60/second"}}]
}}'
TIMEOUT=0.5
ITER_CHUNK_TYPE=one-by-one
DEFAULT_STREAM_RESPONSE=true
TZ=Asia/Shanghai
"""


def env_file(tmp_path: Path, text: str, **urls: str) -> dict[str, str]:
    path = tmp_path / ".env"
    path.write_text(text.format(**urls))
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


@pytest.fixture
def general() -> FakeUpstream:
    fake = FakeUpstream().start()
    yield fake  # type: ignore[misc]
    fake.stop()


def client(proxy: ProxyServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key=key, max_retries=0)


def test_env_example_routes_and_swaps_keys_by_level(
    tmp_path: Path,
    upstream: FakeUpstream,
    general: FakeUpstream,
    proxy_factory: Callable[..., ProxyServer],
) -> None:
    env = env_file(tmp_path, ENV_EXAMPLE, openai=upstream.url, general=general.url)
    proxy = proxy_factory(**env)

    client(proxy, "fk-zero-key").chat.completions.create(
        model="o3-anything", messages=[{"role": "user", "content": "hi"}]
    )
    assert upstream.last.headers["authorization"] == "Bearer sk-level0-key"
    seen = set()
    for _ in range(4):
        client(proxy, "fk-one-key").chat.completions.create(
            model="gpt-4", messages=[{"role": "user", "content": "hi"}]
        )
        seen.add(upstream.last.headers["authorization"])
    assert seen == {"Bearer sk-level1-key", "Bearer sk-level12-key"}

    # The general route: forwarded under /gemini, the client's own key passed on.
    answer = httpx.get(proxy.url + "/gemini/v1beta/models", headers={"x-goog-api-key": "AIza-own"})
    assert answer.status_code == 200
    assert general.last.path == "/v1beta/models"
    assert general.last.headers["x-goog-api-key"] == "AIza-own"


def test_model_outside_the_keys_level_is_refused_naming_it(
    tmp_path: Path,
    upstream: FakeUpstream,
    general: FakeUpstream,
    proxy_factory: Callable[..., ProxyServer],
) -> None:
    proxy = proxy_factory(
        **env_file(tmp_path, ENV_EXAMPLE, openai=upstream.url, general=general.url)
    )
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client(proxy, "fk-two-key").chat.completions.create(
            model="gpt-4", messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.status_code == 403
    assert "model: gpt-4 is not allowed" in refused.value.message
    assert upstream.requests == []
    client(proxy, "fk-two-key").chat.completions.create(
        model="gpt-3.5-turbo", messages=[{"role": "user", "content": "hi"}]
    )
    assert upstream.last.headers["authorization"] == "Bearer sk-level12-key"


def test_env_example_dict_of_strings_rate_limit_applies_per_route(
    tmp_path: Path,
    upstream: FakeUpstream,
    general: FakeUpstream,
    proxy_factory: Callable[..., ProxyServer],
) -> None:
    proxy = proxy_factory(
        **env_file(tmp_path, ENV_EXAMPLE, openai=upstream.url, general=general.url)
    )
    statuses = [
        httpx.get(proxy.url + "/gemini/v1beta/models", headers={"x-goog-api-key": "k"}).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    assert len(general.requests) == 2


def test_repo_env_level_form_limits_and_chat_log(
    tmp_path: Path, upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    env = env_file(tmp_path, REPO_ENV, openai=upstream.url)
    env["LOG_DIR"] = str(tmp_path / "Log")
    proxy = proxy_factory(**env)
    assert proxy.settings.chatlog.enabled  # LOG_OPENAI=true
    sdk = client(proxy, "fk-repo-key")
    for _ in range(2):
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert upstream.last.headers["authorization"] == "Bearer sk-repo-real-key"
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert "REQ_RATE_LIMIT" in limited.value.message
    assert len(upstream.requests) == 2


def test_timeout_of_openai_forward_does_not_cut_a_stream_with_long_gaps(
    tmp_path: Path, upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    async def slow(request: web.Request, rec: Recorded) -> web.StreamResponse:
        events = sse(
            chunk(role="assistant", content=""), chunk("a"), chunk("b"), chunk(finish="stop")
        )
        return await fake_stream(request, events, delay=1.2)  # gaps over twice TIMEOUT

    upstream.handler = slow
    proxy = proxy_factory(**env_file(tmp_path, REPO_ENV, openai=upstream.url))
    stream = client(proxy, "fk-repo-key").chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "ab"


def test_both_route_styles_in_one_file_stop_start_up_naming_both() -> None:
    from ai_forward.settings import Settings, SettingsError

    with pytest.raises(SettingsError) as failed:
        Settings.from_env(
            {
                "FORWARD_CONFIG": '[{"base_url": "https://api.openai.com", "route": "/"}]',
                "OPENAI_BASE_URL": "https://api.openai.com",
            }
        )
    assert "FORWARD_CONFIG and OPENAI_BASE_URL" in str(failed.value)


def test_every_settings_error_is_reported_at_once() -> None:
    from ai_forward.settings import Settings, SettingsError

    with pytest.raises(SettingsError) as failed:
        Settings.from_env({"TIMEOUT": "soon", "PORT": "http", "LEVEL_MODELS": "[1]"})
    lines = str(failed.value).splitlines()
    names = sorted(line.split("=")[0].split(":")[0] for line in lines)
    assert names == ["LEVEL_MODELS", "PORT", "TIMEOUT"]


def test_json_key_forms_of_0_8_0_are_keys_not_comma_split_garbage() -> None:
    from ai_forward.settings import Settings

    settings = Settings.from_env(
        {"OPENAI_API_KEY": '{"sk-a-key": [0], "sk-b-key": [0]}', "FORWARD_KEY": '{"fk-a-key": 0}'}
    )
    assert settings.routes[0].keys == ("sk-a-key", "sk-b-key")
    assert settings.forward_keys == ("fk-a-key",)
