"""Rules that decide from the body (model allowlists, MODEL_ROUTES, TPM) can't be dodged by
a body the gateway cannot read, and requests no such rule applies to are left alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import FakeUpstream, ProxyServer
from tests.users.fakes import TOKEN, create

CHAT = "/v1/chat/completions"
GPT4O = b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]'
# Bodies a lenient upstream reads as a request for gpt-4o, and the gateway cannot.
UNREADABLE = {
    "byte order mark": (b"\xef\xbb\xbf" + GPT4O + b"}", "application/json", "byte order mark"),
    "NaN": (GPT4O + b', "temperature": NaN}', "application/json", "NaN"),
    "Infinity": (GPT4O + b', "top_p": Infinity}', "application/json", "Infinity"),
    "text/plain NaN": (GPT4O + b', "temperature": NaN}', "text/plain", "NaN"),
    "an array": (b"[" + GPT4O + b"}]", "application/json", "not an object"),
    "form-encoded": (b"model=gpt-4o&messages=hi", "application/x-www-form-urlencoded", "JSON"),
}


@pytest.fixture
def gateway(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], tmp_path: Path
) -> ProxyServer:
    return proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real",
        FORWARD_KEY="fk-test",
        ADMIN_TOKEN=TOKEN,
        STORE_URL=f"sqlite:///{tmp_path}/users.db",
    )


def post(url: str, key: str, body: bytes, content_type: str, path: str = CHAT) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}", "content-type": content_type}
    return httpx.post(url + path, content=body, headers=headers, timeout=10)


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_unreadable_body_is_400_for_a_key_with_a_model_allowlist(
    upstream: FakeUpstream, gateway: ProxyServer, case: str
) -> None:
    body, content_type, why = UNREADABLE[case]
    key = create(gateway.url, "mini", models=["gpt-4o-mini"])
    response = post(gateway.url, key, body, content_type)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["type"] == "invalid_request_error" and error["code"] == "unreadable_body"
    assert why in error["message"] and "model allowlist" in error["message"]
    assert upstream.requests == []


def test_json_labelled_text_plain_is_checked_as_json(
    upstream: FakeUpstream, gateway: ProxyServer
) -> None:
    key = create(gateway.url, "mini", models=["gpt-4o-mini"])
    response = post(gateway.url, key, GPT4O + b"}", "text/plain")
    assert response.status_code == 403 and error_of(response)["code"] == "model_not_allowed"
    allowed = GPT4O.replace(b"gpt-4o", b"gpt-4o-mini") + b"}"
    assert post(gateway.url, key, allowed, "text/plain").status_code == 200
    assert len(upstream.requests) == 1


def test_duplicate_model_keys_reach_the_upstream_as_the_model_that_was_checked(
    upstream: FakeUpstream, gateway: ProxyServer
) -> None:
    key = create(gateway.url, "mini", models=["gpt-4o-mini"])
    twice = b'{"model": "gpt-4o", "model": "gpt-4o-mini", "messages": []}'
    response = post(gateway.url, key, twice, "application/json")
    assert response.status_code == 200, response.text
    assert upstream.last.body.count(b'"model"') == 1
    assert upstream.last.json()["model"] == "gpt-4o-mini"


def test_non_string_model_is_400_naming_model(upstream: FakeUpstream, gateway: ProxyServer) -> None:
    key = create(gateway.url, "mini", models=["gpt-4o-mini"])
    response = post(gateway.url, key, b'{"model": ["gpt-4o"]}', "application/json")
    assert response.status_code == 400 and error_of(response)["param"] == "model"
    assert upstream.requests == []


FORMS = {
    "unquoted name": (
        b"--B\r\nContent-Disposition: form-data; name=model\r\n\r\ngpt-4o\r\n--B--\r\n"
    ),
    "LF line ends": b'--B\nContent-Disposition: form-data; name="model"\n\ngpt-4o\n--B--\n',
    "header case": b'--B\r\ncontent-disposition: form-data; NAME="model"\r\n\r\ngpt-4o\r\n--B--',
    "second field": (
        b'--B\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-4o-mini\r\n'
        b'--B\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-4o\r\n--B--\r\n'
    ),
}


@pytest.mark.parametrize("case", list(FORMS))
def test_every_model_field_of_a_form_is_checked(
    upstream: FakeUpstream, gateway: ProxyServer, case: str
) -> None:
    key = create(gateway.url, "mini", models=["gpt-4o-mini"])
    response = post(
        gateway.url, key, FORMS[case], "multipart/form-data; boundary=B", "/v1/audio/transcriptions"
    )
    assert response.status_code == 403, response.text
    assert "'gpt-4o'" in error_of(response)["message"]
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (FORMS["unquoted name"], "multipart/form-data"),  # no boundary
        (FORMS["unquoted name"][:-9], "multipart/form-data; boundary=B"),  # never closed
        (b'--B\r\nContent-Disposition: form-data; name="file"; x="model"\r\n\r\nx\r\n--B--',
         "multipart/form-data; boundary=B"),  # a part a lenient parser may take for the model
    ],
)  # fmt: skip
def test_unreadable_form_is_400_for_a_key_with_a_model_allowlist(
    upstream: FakeUpstream, gateway: ProxyServer, body: bytes, content_type: str
) -> None:
    key = create(gateway.url, "mini", models=["gpt-4o-mini"])
    response = post(gateway.url, key, body, content_type, "/v1/audio/transcriptions")
    assert response.status_code == 400, response.text
    assert "form" in error_of(response)["message"]
    assert upstream.requests == []


def test_requests_no_body_rule_applies_to_pass_byte_for_byte(
    upstream: FakeUpstream, gateway: ProxyServer
) -> None:
    key = create(gateway.url, "mini", models=["gpt-4o-mini"])
    listed = httpx.get(gateway.url + "/v1/models", headers={"authorization": f"Bearer {key}"})
    assert listed.status_code == 200
    unrestricted = create(gateway.url, "anyone")
    for client_key in ("fk-test", unrestricted):
        for body, content_type, _ in UNREADABLE.values():
            response = post(gateway.url, client_key, body, content_type, "/v1/responses")
            assert response.status_code == 200 and upstream.last.body == body
    assert len(upstream.requests) == 1 + 2 * len(UNREADABLE)


def test_unreadable_body_is_400_when_model_routes_are_set(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    gateway = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real",
        ANTHROPIC_BASE_URL=providers.url,
        ANTHROPIC_API_KEY="sk-ant",
        MODEL_ROUTES="claude-*=anthropic",
    )
    claude = b'\xef\xbb\xbf{"model": "claude-3-haiku", "messages": []}'
    response = post(gateway.url, "none", claude, "application/json")
    assert response.status_code == 400 and "MODEL_ROUTES" in error_of(response)["message"]
    form = FORMS["unquoted name"].replace(b"gpt-4o", b"claude-3-haiku")
    response = post(
        gateway.url, "none", form, "multipart/form-data; boundary=B", "/v1/audio/transcriptions"
    )
    assert response.status_code == 400 and error_of(response)["param"] == "model"
    assert upstream.requests == [] and providers.requests == []


def test_unreadable_body_is_400_under_a_token_limit(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    gateway = proxy_factory(
        OPENAI_BASE_URL=upstream.url, OPENAI_API_KEY="sk-real", TPM_LIMIT="100000/minute"
    )
    body, content_type, _ = UNREADABLE["NaN"]
    response = post(gateway.url, "none", body, content_type)
    assert response.status_code == 400 and "TPM_LIMIT" in error_of(response)["message"]
    form = FORMS["unquoted name"].replace(b"gpt-4o", b"whisper-1")
    response = post(
        gateway.url, "none", form, "multipart/form-data; boundary=B", "/v1/audio/transcriptions"
    )
    assert response.status_code == 200  # an upload is estimated by its size
    assert len(upstream.requests) == 1


def test_a_model_in_the_query_string_is_checked_too(
    upstream: FakeUpstream, gateway: ProxyServer
) -> None:
    key = create(gateway.url, "mini", models=["gpt-4o-mini"])
    sdp = b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"
    path = "/v1/realtime/calls?mod%65l=gpt-4o-realtime"
    response = post(gateway.url, key, sdp, "application/sdp", path)
    assert response.status_code == 403 and "'gpt-4o-realtime'" in error_of(response)["message"]
    response = post(gateway.url, key, sdp, "application/sdp", "/v1/realtime/calls")
    assert response.status_code == 400  # a body the allowlist cannot read at all
    assert upstream.requests == []


def test_plainly_non_json_bodies_pass_routing_and_token_limits(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: Callable[..., ProxyServer]
) -> None:
    gateway = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real",
        ANTHROPIC_BASE_URL=providers.url,
        ANTHROPIC_API_KEY="sk-ant",
        TPM_LIMIT="100000/minute",
    )
    sdp = b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"
    response = post(gateway.url, "none", sdp, "application/sdp", "/v1/realtime/calls")
    assert response.status_code == 200 and upstream.last.body == sdp
    disguised = b'\xef\xbb\xbf{"model": "claude-3-haiku", "messages": []}'
    response = post(gateway.url, "none", disguised, "application/octet-stream")
    assert response.status_code == 400 and error_of(response)["code"] == "unreadable_body"
    assert len(upstream.requests) == 1 and providers.requests == []
