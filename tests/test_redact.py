"""No real key reaches a client or a chat log, even from an upstream that echoes it."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from aiohttp import web

from ai_forward.redact import Redactor, StreamMask, mask
from ai_forward.settings import Settings
from tests.chatlog.fakes import all_log_bytes, wait_records
from tests.fakes import FakeUpstream, ProxyServer, Recorded, chunk, json_response
from tests.processes import AIFD, ROOT, clean_env
from tests.providers.fakes import DATA, env

Factory = Callable[..., ProxyServer]

OPENAI_KEY = "sk-proj-Route0penAiKey0123456789abcdefghijklmnop"
ANTHROPIC_KEY = "sk-ant-api03-AnthropicKey0123456789abcdefghij"
GEMINI_KEY = "AIzaSyGeminiKey0123456789abcdefghijkl"
AZURE_KEY = "azure0123456789abcdef0123456789ab"
HOST_KEY = "gsk_HostKey0123456789abcdefghijklmnopqrs"
EXTRA_KEY = "sk-extra-Route0123456789abcdefghijklm"
ALL_KEYS = (OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY, AZURE_KEY, HOST_KEY, EXTRA_KEY)
KEY_HEADERS = ("x-api-key", "x-goog-api-key", "api-key")


def received_key(rec: Recorded) -> str:
    for name in KEY_HEADERS:
        if name in rec.headers:
            return rec.headers[name]
    return rec.headers.get("authorization", "").removeprefix("Bearer ")


async def split_write(request: web.Request, data: bytes, key: str) -> web.StreamResponse:
    """`data` as an event stream, cut in two in the middle of `key`, with a pause between."""
    cut = data.index(key.encode()) + len(key) // 2
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    await response.write(data[:cut])
    await asyncio.sleep(0.1)
    await response.write(data[cut:])
    await response.write_eof()
    return response


def recorded_stream(name: str, old: str, key: str) -> bytes:
    """A recorded provider stream whose first text fragment `old` now tells the key."""
    return (DATA / name).read_bytes().replace(old.encode(), f"key {key}".encode(), 1)


async def echo_key(request: web.Request, rec: Recorded) -> web.StreamResponse:
    """Every way an upstream can give the key it received back: 401 body, header, stream."""
    key = received_key(rec)
    body = rec.json() if rec.body else {}
    if body.get("model") == "bad-key" or "bad-key" in rec.path:
        told = {"message": f"Incorrect API key provided: {key}", "type": "invalid_request_error"}
        return await json_response(
            {"error": {**told, "code": "invalid_api_key", "param": None, "key": key}},
            status=401,
            headers={"x-echo-key": key, "www-authenticate": f"Bearer {key}"},
        )
    if rec.path == "/v1/messages":
        if body.get("stream"):
            data = recorded_stream("anthropic_stream.sse", "Okay, let's check", key)
            return await split_write(request, data, key)
        return await json_response({"error": {"message": key}}, status=401)
    if "streamGenerateContent" in rec.path:
        return await split_write(request, recorded_stream("gemini_stream.sse", "The", key), key)
    if "generateContent" in rec.path:
        error: dict[str, Any] = {
            "code": 400,
            "message": f"API key not valid: {key}",
            "status": "INVALID_ARGUMENT",
        }
        return await json_response({"error": error}, status=400)
    if body.get("stream"):
        events = [chunk(role="assistant", content=""), chunk(f"key {key}"), chunk(finish="stop")]
        data = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
        return await split_write(request, data + b"data: [DONE]\n\n", key)
    return await json_response(
        {"echo": f"your key is {key}"}, headers={"x-echo-key": key, "x-request-id": "req-1"}
    )


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "logs"


@pytest.fixture
def host() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    fake.handler = echo_key
    yield fake
    fake.stop()


@pytest.fixture
def gateway(
    upstream: FakeUpstream,
    providers: FakeUpstream,
    host: FakeUpstream,
    proxy_factory: Factory,
    log_dir: Path,
) -> ProxyServer:
    """Every kind of real key configured, every upstream echoing it, chats logged."""
    upstream.handler = providers.handler = echo_key
    address = f"127.0.0.1:{host.port}"
    settings = env(upstream, providers)
    settings.update(
        OPENAI_API_KEY=OPENAI_KEY,
        ANTHROPIC_API_KEY=ANTHROPIC_KEY,
        GEMINI_API_KEY=GEMINI_KEY,
        AZURE_OPENAI_API_KEY=AZURE_KEY,
        EXTRA_BASE_URL=providers.url,
        EXTRA_ROUTE_PREFIX="/extra",
        EXTRA_API_KEY=EXTRA_KEY,
        HOST_ALLOWLIST=f"http://{address}",
        HOST_KEYS=f"{address}={HOST_KEY}",
        LOG_CHAT="true",
        LOG_DIR=log_dir,
    )
    return proxy_factory(**settings)


def sdk(proxy: ProxyServer, prefix: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + prefix, api_key="fk-test", max_retries=0)


def assert_no_key(text: str | bytes) -> None:
    raw = text.encode() if isinstance(text, str) else text
    for key in ALL_KEYS:
        assert key.encode() not in raw
        assert key[: len(key) // 2 + 4].encode() not in raw  # nor a telling part of one


def assert_logs_clean(proxy: ProxyServer, log_dir: Path, records: int) -> None:
    assert len(wait_records(log_dir, records)) >= records
    proxy.stop()
    assert_no_key(all_log_bytes(log_dir))


def assert_response_clean(response: Any) -> None:  # httpx's, or the SDK's own
    assert_no_key(response.content)
    assert_no_key("\n".join(f"{k}: {v}" for k, v in response.headers.items()))


def test_passthrough_401_echoing_the_key_is_masked_in_body_and_headers(
    gateway: ProxyServer, upstream: FakeUpstream, log_dir: Path
) -> None:
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"authorization": "Bearer fk-test"},
        json={"model": "bad-key", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert received_key(upstream.last) == OPENAI_KEY  # the upstream did get the real key
    assert response.status_code == 401
    assert_response_clean(response)
    error = response.json()["error"]
    assert error["message"] == "Incorrect API key provided: " + mask(len(OPENAI_KEY)).decode()
    assert response.headers["x-echo-key"] == mask(len(OPENAI_KEY)).decode()
    assert int(response.headers["content-length"]) == len(response.content)
    assert_logs_clean(gateway, log_dir, 1)


def test_sdk_error_message_never_holds_the_key(gateway: ProxyServer, log_dir: Path) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        sdk(gateway).chat.completions.create(
            model="bad-key", messages=[{"role": "user", "content": "hi"}]
        )
    assert_no_key(str(raised.value))
    assert "[REDACTED" in str(raised.value)
    assert_logs_clean(gateway, log_dir, 1)


def test_non_chat_reply_and_headers_echoing_the_key_are_masked(
    gateway: ProxyServer, upstream: FakeUpstream
) -> None:
    response = httpx.get(gateway.url + "/v1/files", headers={"authorization": "Bearer fk-test"})
    assert received_key(upstream.last) == OPENAI_KEY
    assert response.status_code == 200
    assert_response_clean(response)
    assert response.json() == {"echo": "your key is " + mask(len(OPENAI_KEY)).decode()}
    assert response.headers["x-request-id"] == "req-1"


def test_extra_route_echo_is_masked(gateway: ProxyServer, providers: FakeUpstream) -> None:
    response = httpx.get(
        gateway.url + "/extra/v1/bad-key", headers={"authorization": "Bearer fk-test"}
    )
    assert received_key(providers.last) == EXTRA_KEY
    assert response.status_code == 401
    assert_response_clean(response)


def test_stream_with_the_key_split_across_chunks_is_masked(
    gateway: ProxyServer, upstream: FakeUpstream, log_dir: Path
) -> None:
    stream = sdk(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert received_key(upstream.last) == OPENAI_KEY
    assert text == "key " + mask(len(OPENAI_KEY)).decode()
    assert_logs_clean(gateway, log_dir, 1)


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("claude-sonnet-4-5", ANTHROPIC_KEY),
        ("gemini-2.0-flash", GEMINI_KEY),
        ("gpt-35-turbo", AZURE_KEY),
    ],
)
def test_translated_stream_with_the_key_split_across_chunks_is_masked(
    gateway: ProxyServer, providers: FakeUpstream, log_dir: Path, model: str, key: str
) -> None:
    stream = sdk(gateway).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert received_key(providers.last) == key
    assert_no_key(text)
    assert "key " + mask(len(key)).decode() in text
    assert_logs_clean(gateway, log_dir, 1)


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("claude-sonnet-4-5", ANTHROPIC_KEY),
        ("gemini-2.0-flash", GEMINI_KEY),
        ("gpt-35-bad-key", AZURE_KEY),  # the deployment in Azure's path makes it refuse
    ],
)
def test_translated_error_echoing_the_key_is_masked(
    gateway: ProxyServer, providers: FakeUpstream, log_dir: Path, model: str, key: str
) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        sdk(gateway).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )
    assert received_key(providers.last) == key
    response = raised.value.response
    assert response.status_code in (400, 401)
    assert_response_clean(response)
    assert "[REDACTED" in response.json()["error"]["message"]
    assert_logs_clean(gateway, log_dir, 1)


def test_fan_out_errors_and_streams_echoing_keys_are_masked(
    gateway: ProxyServer, upstream: FakeUpstream, providers: FakeUpstream, log_dir: Path
) -> None:
    messages: Any = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.AuthenticationError) as raised:  # every model refused
        sdk(gateway).chat.completions.create(model="bad-key,gpt-35-bad-key", messages=messages)
    assert_response_clean(raised.value.response)
    reply = sdk(gateway).chat.completions.create(
        model="gpt-4o-mini,claude-sonnet-4-5,gemini-2.0-flash", messages=messages
    )
    dumped = reply.model_dump_json()
    assert [c.finish_reason for c in reply.choices] == ["error", "error", "error"]
    assert dumped.count("[REDACTED") == 3
    assert_no_key(dumped)
    stream = sdk(gateway).chat.completions.create(
        model="gpt-4o-mini,claude-sonnet-4-5,gemini-2.0-flash", messages=messages, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    seen = {received_key(r) for r in upstream.requests + providers.requests}
    assert {OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY} <= seen
    assert_no_key(text)
    assert text.count("[REDACTED") == 3
    assert_logs_clean(gateway, log_dir, 3)


def test_x_host_final_echo_is_masked_in_replies_streams_and_logs(
    gateway: ProxyServer, host: FakeUpstream, log_dir: Path
) -> None:
    headers = {"x-host-final": f"127.0.0.1:{host.port}", "authorization": "Bearer fk-test"}
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers=headers,
        json={"model": "bad-key", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert received_key(host.last) == HOST_KEY
    assert response.status_code == 401
    assert_response_clean(response)
    stream = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key="fk-test", max_retries=0, default_headers=headers
    ).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "key " + mask(len(HOST_KEY)).decode()
    assert_logs_clean(gateway, log_dir, 2)


def test_mask_keeps_the_length_and_shows_nothing_of_the_key() -> None:
    redactor = Redactor([OPENAI_KEY, "short"])
    masked = redactor.redact(f'{{"k": "{OPENAI_KEY}"}}'.encode())
    assert masked == b'{"k": "' + mask(len(OPENAI_KEY)) + b'"}'
    assert orjson.loads(masked) == {"k": mask(len(OPENAI_KEY)).decode()}
    assert redactor.keys == (OPENAI_KEY.encode(),)  # too short to be a provider's key
    assert redactor.held_from(b'{"k": "' + OPENAI_KEY[:3].encode()) == 7
    assert redactor.held_from(b'{"k": "' + OPENAI_KEY[:20].encode()) == 7
    assert redactor.held_from(b'{"done": true}\n\n') == len(b'{"done": true}\n\n')


def test_settings_repr_shows_no_key_or_token() -> None:
    settings = Settings.from_env(
        {
            "OPENAI_API_KEY": OPENAI_KEY,
            "FORWARD_KEY": "fk-forward-secret-1",
            "EXTRA_BASE_URL": "http://127.0.0.1:9",
            "EXTRA_ROUTE_PREFIX": "/extra",
            "EXTRA_API_KEY": EXTRA_KEY,
            "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
            "GEMINI_API_KEY": GEMINI_KEY,
            "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com",
            "AZURE_OPENAI_API_KEY": AZURE_KEY,
            "HOST_ALLOWLIST": "api.groq.com",
            "HOST_KEYS": f"api.groq.com={HOST_KEY}",
            "ADMIN_TOKEN": "admin-token-secret-0123",
            "STORE_URL": "redis://:store-password@127.0.0.1:6379/0",
            "RATE_LIMIT_BACKEND": "redis://:limits-password@127.0.0.1:6379/1",
        }
    )
    text = repr(settings) + str(settings)
    assert "api.groq.com" in text and "/extra" in text
    for secret in (*ALL_KEYS, "fk-forward-secret-1", "admin-token-secret", "-password"):
        assert secret not in text


def test_unwritable_log_dir_fails_like_a_bad_setting_without_showing_keys(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("")
    base = clean_env(PYTHONPATH=str(ROOT), OPENAI_API_KEY=OPENAI_KEY, FORWARD_KEY="fk-forward-7c1e")
    failed = subprocess.run(
        [*AIFD, "run", "--host", "127.0.0.1", "--port", "0"],
        cwd=tmp_path,
        env={**base, "LOG_CHAT": "true", "LOG_DIR": str(tmp_path / "a-file" / "logs")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    bad = subprocess.run(
        [*AIFD, "run"],
        cwd=tmp_path,
        env={**base, "PORT": "not-a-port"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = failed.stdout + failed.stderr
    assert OPENAI_KEY not in output and "fk-forward-7c1e" not in output
    assert "Traceback" not in output and "locals" not in output.lower()
    errors = [line for line in failed.stderr.splitlines() if line.startswith("aifd:")]
    assert len(errors) == 1
    assert "LOG_DIR=" in errors[0] and "cannot write chat logs" in errors[0]
    assert bad.stderr.startswith("aifd: PORT=")
    assert failed.returncode == bad.returncode == 2


def test_stream_mask_masks_a_key_cut_anywhere_and_passes_clean_chunks_whole() -> None:
    key = "sk-proj-abcdefghijklmnop"
    redactor = Redactor([key, "sk-other-0123456789"])
    text = f'data: {{"echo": "{key}", "more": "sk-"}}\n\n'.encode()
    whole = redactor.redact(text)
    assert key.encode() not in whole
    for cut in range(1, len(text)):
        mask_ = StreamMask(redactor)
        out = mask_.push(text[:cut]) + mask_.push(text[cut:]) + mask_.pending
        assert out == whole, cut
    # A chunk with nothing of a key in it goes out as it came, nothing held back.
    mask_ = StreamMask(redactor)
    clean = b'data: {"choices": []}\n\n'
    assert mask_.push(clean) is clean and mask_.pending == b""
    # A chunk ending in what could start a key holds that tail until the next chunk.
    assert mask_.push(b"data: s") == b"data: " and mask_.pending == b"s"
    assert mask_.push(b"ure\n") == b"sure\n"
