"""Request targets: only the configured upstream is ever called, with the path as sent.

Request lines are written on raw sockets: HTTP clients normalise the very targets
these tests are about. A second listener (the trap) stands where an attacker would
point the gateway; it must see no connection at all.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import openai
import orjson
import pytest
from aiohttp import web

from ai_forward.errors import InvalidRequest
from ai_forward.origin import Origin
from ai_forward.target import parse_target
from tests.fakes import FakeUpstream, ProxyServer, Recorded, json_response, running_proxy
from tests.providers.fakes import env as provider_env

Factory = Callable[..., ProxyServer]


class Trap:
    """A plain TCP listener that counts every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(0.5)
                with contextlib.suppress(OSError):
                    self.received += conn.recv(65536)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def trap() -> Iterator[Trap]:
    listener = Trap()
    yield listener
    listener.close()


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    def error(self) -> dict[str, object]:
        error: dict[str, object] = orjson.loads(self.body)["error"]
        assert set(error) == {"message", "type", "param", "code"}
        return error


def send_raw(
    port: int, request_line: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> Answer:
    """Write `request_line` and headers as they are; read the whole answer."""
    lines = [request_line, "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    pairs = [line.split(":", 1) for line in header_lines]
    parsed = [(k.strip().lower(), v.strip()) for k, v in pairs]
    if ("transfer-encoding", "chunked") in parsed:
        rest = dechunk(rest)
    return Answer(int(status_line.split()[1]), parsed, rest)


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return out


def get(port: int, target: str, **headers: str) -> Answer:
    return send_raw(port, f"GET {target} HTTP/1.1", {"Authorization": "Bearer fk-test", **headers})


# Targets that would reach the trap if any part of them were taken as an authority.
def hostile_targets(port: int) -> list[str]:
    at = f"127.0.0.1:{port}"
    return [
        f"*@{at}/v1/models",
        f"*@{at}",
        "*",
        f"*{at}/v1/models",
        f"{at}/v1/models",
        f"https:{at}/v1/models",
        f"/\\{at}/v1/models",
        f"/\\\\{at}/v1/models",
        f"\\\\{at}/v1/models",
        f"/v1/..%2F..%2F{at}",
        f"/..//{at}/v1/models",
        f"/v1/%2e%2e/%2E%2E/{at}/v1",
        f"/v1/models%00@{at}",
        f"/v1/models%0d%0aHost:%20{at}",
    ]


# Each way a client may send its key: a target with userinfo used to leak through all of them.
KEY_HEADERS = [
    {"Authorization": "Bearer fk-test"},
    {"x-api-key": "fk-test"},
    {"api-key": "fk-test"},
    {},
]


@pytest.mark.parametrize("key", KEY_HEADERS, ids=lambda h: next(iter(h), "no-key"))
def test_hostile_targets_get_400_in_openai_shape_and_never_a_connection(
    upstream: FakeUpstream, proxy: ProxyServer, trap: Trap, key: dict[str, str]
) -> None:
    for target in hostile_targets(trap.port):
        answer = send_raw(proxy.port, f"GET {target} HTTP/1.1", key)
        assert answer.status == 400, target
        if answer.header("content-type") == ["application/json"]:  # else uvicorn refused it
            assert answer.error()["code"] == "invalid_target", target
    assert upstream.requests == []
    assert trap.connections == 0 and trap.received == b""


def test_targets_naming_another_host_go_to_the_configured_upstream_only(
    upstream: FakeUpstream, proxy: ProxyServer, trap: Trap
) -> None:
    at = f"127.0.0.1:{trap.port}"
    sent = {
        f"http://{at}/v1/models": "/v1/models",
        f"HTTP://user:pw@{at}/v1/models?x=1": "/v1/models",
        f"https://{at}/": "/",
        f"//{at}/v1/models": f"/{at}/v1/models",
        f"/v1/models@{at}": f"/v1/models@{at}",
        f"/%2F%2F{at}/v1": f"/%2F%2F{at}/v1",
        f"/@{at}/v1/models": f"/@{at}/v1/models",
    }
    for target, path in sent.items():
        answer = get(proxy.port, target)
        assert answer.status == 200, target
        assert upstream.last.raw_path == path, target
        assert upstream.last.headers["host"] == f"127.0.0.1:{upstream.port}"
        assert upstream.last.headers["authorization"] in ("Bearer sk-real-1", "Bearer sk-real-2")
    assert trap.connections == 0


def test_absolute_form_target_is_forwarded_as_a_proxy_request_to_the_configured_upstream(
    upstream: FakeUpstream, proxy: ProxyServer
) -> None:
    body = b'{"model": "gpt-4o-mini", "messages": []}'
    answer = send_raw(
        proxy.port,
        "POST http://api.openai.com/v1/chat/completions?trace=1 HTTP/1.1",
        {"Authorization": "Bearer fk-test", "Content-Type": "application/json"},
        body,
    )
    assert answer.status == 200
    assert orjson.loads(answer.body)["choices"][0]["message"]["content"] == "Hello!"
    assert (upstream.last.raw_path, upstream.last.query) == ("/v1/chat/completions", "trace=1")
    assert upstream.last.body == body


def test_x_host_final_cannot_be_steered_elsewhere_by_target_or_header(
    upstream: FakeUpstream, proxy_factory: Factory, trap: Trap
) -> None:
    allowed = f"127.0.0.1:{upstream.port}"
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real",
        FORWARD_KEY="fk-test",
        HOST_ALLOWLIST=f"http://{allowed}",
        HOST_KEYS=f"{allowed}=sk-host",
    )
    at = f"127.0.0.1:{trap.port}"
    for target in hostile_targets(trap.port):
        for key in KEY_HEADERS:
            answer = send_raw(
                proxy.port, f"GET {target} HTTP/1.1", {**key, "X-Host-Final": allowed}
            )
            assert answer.status == 400, target
    hosts = (at, f"{allowed}@{at}", f"{at}#{allowed}", f"{allowed}/@{at}", f"user@{at}", f"*@{at}")
    for host in hosts:
        answer = get(proxy.port, "/v1/models", **{"X-Host-Final": host})
        assert answer.status == 403 and answer.error()["code"] == "host_not_allowed", host
    assert upstream.requests == []
    answer = get(proxy.port, f"http://{at}/v1/models/a%2Fb", **{"X-Host-Final": allowed})
    assert answer.status == 200
    assert upstream.last.raw_path == "/v1/models/a%2Fb"
    assert upstream.last.headers["authorization"] == "Bearer sk-host"
    assert trap.connections == 0


def test_connect_gets_405_in_openai_shape(upstream: FakeUpstream, trap: Trap) -> None:
    env = {"OPENAI_BASE_URL": upstream.url, "OPENAI_API_KEY": "sk-real", "FORWARD_KEY": "fk-test"}
    # h11 hands CONNECT to the app; httptools refuses its authority-form target itself (400).
    with running_proxy(env, http="h11") as proxy:
        answer = send_raw(
            proxy.port,
            f"CONNECT 127.0.0.1:{trap.port} HTTP/1.1",
            {"Authorization": "Bearer fk-test"},
        )
        assert answer.status == 405
        assert answer.error()["code"] == "method_not_allowed"
        assert "CONNECT" in str(answer.error()["message"])
        assert get(proxy.port, f"http://127.0.0.1:{trap.port}/v1/models").status == 200
        assert upstream.last.raw_path == "/v1/models"
    with running_proxy(env) as proxy:
        assert send_raw(proxy.port, f"CONNECT 127.0.0.1:{trap.port} HTTP/1.1").status in (400, 405)
    assert trap.connections == 0
    assert [r.raw_path for r in upstream.requests] == ["/v1/models"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/meta-llama%2FLlama-3-8B",
        "/v1/files/a%20b",
        "/v1/files/what%3Fnot-a-query",
        "/v1/files/not%23a-fragment",
        "/v1/files/100%25",
        "/v1/files/caf%C3%A9",
        "/v1/files/x:y@z;a=b,c!$&'()*+~",
    ],
)
def test_path_reaches_the_upstream_byte_for_byte(
    upstream: FakeUpstream, proxy: ProxyServer, path: str
) -> None:
    answer = get(proxy.port, path + "?after=a%20b&x=%2F&y")
    assert answer.status == 200
    assert upstream.last.raw_path == path
    assert upstream.last.query == "after=a%20b&x=%2F&y"


def test_route_prefix_and_base_path_keep_the_raw_path(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        EXTRA_BASE_URL=upstream.url + "/api",
        EXTRA_ROUTE_PREFIX="/localai",
        FORWARD_KEY="fk-test",
    )
    assert get(proxy.port, "/localai/v1/models/org%2Fmodel%20x").status == 200
    assert upstream.last.raw_path == "/api/v1/models/org%2Fmodel%20x"
    assert get(proxy.port, "/loc%61lai//v1/models").status == 200
    assert upstream.last.raw_path == "/api/v1/models"
    assert get(proxy.port, "/localai").status == 200
    assert upstream.last.raw_path == "/api/"


@pytest.mark.parametrize(
    "target",
    [
        "/localai/../v1/models",
        "/localai/%2e%2e/v1/models",
        "/localai/%2E%2E/v1/models",
        "/localai/.%2e/v1/models",
        "/localai/..%2Fv1/models",
        "/localai/..%5Cv1/models",
        "/localai/./v1/models",
        "/localai/v1/models/..",
        "/localai/v1/models/%2e",
    ],
)
def test_dot_segments_are_refused_before_routing(
    upstream: FakeUpstream, proxy_factory: Factory, target: str
) -> None:
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        EXTRA_BASE_URL=upstream.url + "/api",
        EXTRA_ROUTE_PREFIX="/localai",
        FORWARD_KEY="fk-test",
    )
    answer = get(proxy.port, target)
    assert answer.status == 400
    error = answer.error()
    assert error["code"] == "invalid_target" and "'..' segments" in str(error["message"])
    assert upstream.requests == []


@pytest.mark.parametrize("target", ["/v1/%00", "/v1/models%00x", "/v1/a%1Fb", "/v1/%zz", "/v1/a%"])
def test_nul_control_characters_and_broken_escapes_are_refused(
    upstream: FakeUpstream, proxy: ProxyServer, target: str
) -> None:
    answer = get(proxy.port, target)
    assert answer.status == 400 and answer.error()["code"] == "invalid_target"
    assert upstream.requests == []


def test_per_path_limit_holds_whatever_the_spelling_of_the_path(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real",
        FORWARD_KEY="fk-test",
        REQ_RATE_LIMIT="/v1/chat/completions=3/minute",
    )
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
    headers = {"Authorization": "Bearer fk-test", "Content-Type": "application/json"}

    def post(target: str) -> Answer:
        return send_raw(proxy.port, f"POST {target} HTTP/1.1", headers, body)

    for target in ("//v1/chat/completions", "/v1//chat/completions", "/v1/chat%2Fcompletions"):
        assert post(target).status == 200, target
    assert post("/v1/./chat/completions").status == 400
    for target in ("/v1/chat/completions", "/v1/chat/completions//", "/v1/ch%61t/completions"):
        answer = post(target)
        assert answer.status == 429, target
        assert answer.error()["type"] == "rate_limit_exceeded"
    assert [r.raw_path for r in upstream.requests] == [
        "/v1/chat/completions",
        "/v1/chat/completions",
        "/v1/chat%2Fcompletions",
    ]


def test_the_upstreams_date_reaches_the_client_exactly_once(
    upstream: FakeUpstream, proxy: ProxyServer
) -> None:
    date = "Tue, 01 Jan 2030 00:00:00 GMT"

    async def dated(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await json_response({"ok": True}, headers={"Date": date})

    upstream.handler = dated
    answer = get(proxy.port, "/v1/models")
    assert answer.status == 200
    assert answer.header("date") == [date]


def test_bodyless_delete_goes_upstream_without_content_length(
    upstream: FakeUpstream, proxy: ProxyServer
) -> None:
    sdk = openai.OpenAI(base_url=proxy.url + "/v1", api_key="fk-test", max_retries=0)
    sdk.files.delete("file-1")
    assert upstream.last.method == "DELETE"
    assert "content-length" not in upstream.last.headers
    assert "transfer-encoding" not in upstream.last.headers
    response = httpx.post(proxy.url + "/v1/files/file-1/cancel", headers={"x-api-key": "fk-test"})
    assert response.status_code == 200
    assert upstream.last.headers["content-length"] == "0"


def test_every_upstream_url_is_built_from_the_configured_origin() -> None:
    origin = Origin("http://user:pw@[::1]:8080/base/")
    url = origin.url("/v1/models/a%2Fb@c:d", "x=%20")
    assert str(url) == "http://user:pw@[::1]:8080/base/v1/models/a%2Fb@c:d?x=%20"
    for path in ("//evil.example/x", "/v1/@evil.example:80/x"):
        assert origin.url(path).raw_authority == "user:pw@[::1]:8080"
    for path in ("", "evil.example/x", "@evil.example/x", "/a/../b", "/a/%2E%2e", "/a?b", "/a#b"):
        with pytest.raises(InvalidRequest):
            origin.url(path)


def test_canonical_path_is_decoded_collapsed_and_shares_segments_with_the_raw_one() -> None:
    target = parse_target("POST", b"//v1//models/meta-llama%2FLlama%20x/")
    assert target.raw == "/v1/models/meta-llama%2FLlama%20x/"
    assert target.path == "/v1/models/meta-llama/Llama x/"
    assert len(target.raw_segments) == len(target.segments) == 4


@pytest.mark.parametrize("model", ["..", "."])
def test_a_model_name_cannot_make_a_dot_segment_in_a_provider_url(
    upstream: FakeUpstream, providers: FakeUpstream, proxy_factory: Factory, model: str
) -> None:
    proxy = proxy_factory(**provider_env(upstream, providers, MODEL_ROUTES=".*=azure"))
    sdk = openai.OpenAI(base_url=proxy.url + "/v1", api_key="fk-test", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert "'..' segments" in caught.value.message
    assert providers.requests == [] and upstream.requests == []


@pytest.mark.parametrize("target", ["//admin/users", "/admin//users", "///admin/users"])
def test_admin_api_is_never_forwarded_whatever_the_spelling_of_its_path(
    upstream: FakeUpstream, proxy_factory: Factory, tmp_path: object, target: str
) -> None:
    token = "admin-token-for-the-slash-test"
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real-1",
        ADMIN_TOKEN=token,
        STORE_URL=f"sqlite:///{tmp_path}/users.db",
    )
    answer = send_raw(proxy.port, f"GET {target} HTTP/1.1", {"Authorization": f"Bearer {token}"})
    assert answer.status == 200
    assert orjson.loads(answer.body) == {"object": "list", "data": []}
    refused = send_raw(proxy.port, f"GET {target} HTTP/1.1", {"Authorization": "Bearer wrong"})
    assert refused.status == 401
    assert upstream.requests == []
