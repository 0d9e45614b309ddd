"""BODY_TIMEOUT over a raw socket: a body that trickles in, or never comes, ends in a 408."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable

import httpx
import orjson

from tests.fakes import FakeUpstream, ProxyServer

Factory = Callable[..., ProxyServer]
HEAD = (
    "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer fk\r\n"
    "Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
)


def gateway(upstream: FakeUpstream, factory: Factory, timeout: str) -> ProxyServer:
    return factory(
        OPENAI_BASE_URL=upstream.url, OPENAI_API_KEY="sk-1", FORWARD_KEY="fk", BODY_TIMEOUT=timeout
    )


def read_reply(sock: socket.socket) -> bytes:
    """Everything until the gateway closes the connection."""
    sock.settimeout(10)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def trickle(sock: socket.socket, body: bytes, every: float) -> int:
    """Send `body` a byte at a time until the gateway answers; how many bytes went."""
    # poll, not select: the test process may hold more than FD_SETSIZE descriptors by now.
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    for sent, byte in enumerate(body):
        if poller.poll(every * 1000):
            return sent
        sock.sendall(bytes([byte]))
    raise AssertionError("the whole body went out before any answer")


def assert_timeout_reply(reply: bytes) -> None:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in head.lower()
    error = orjson.loads(body)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "request_timeout"
    assert "BODY_TIMEOUT (1s)" in error["message"]


def test_body_trickled_a_byte_at_a_time_is_cut_with_408(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    proxy = gateway(upstream, proxy_factory, "1")
    body = b'{"model": "m", "messages": [' + b" " * 200 + b"]}"
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        started = time.monotonic()
        sock.sendall(HEAD.format(length=len(body)).encode())
        sent = trickle(sock, body, every=0.1)
        reply = read_reply(sock)
        elapsed = time.monotonic() - started
    assert_timeout_reply(reply)
    assert 1.0 <= elapsed < 3.5
    assert 5 <= sent < len(body)
    assert upstream.requests == []
    # The gateway goes on serving others.
    ok = httpx.get(proxy.url + "/v1/models", headers={"authorization": "Bearer fk"})
    assert ok.status_code == 200


def test_headers_then_silence_is_cut_with_408(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    proxy = gateway(upstream, proxy_factory, "1")
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        started = time.monotonic()
        sock.sendall(HEAD.format(length=100).encode())
        reply = read_reply(sock)
        elapsed = time.monotonic() - started
    assert_timeout_reply(reply)
    assert 1.0 <= elapsed < 3.5
    assert upstream.requests == []


def test_body_in_slow_parts_within_body_timeout_is_forwarded_whole(
    upstream: FakeUpstream, proxy_factory: Factory
) -> None:
    proxy = gateway(upstream, proxy_factory, "5")
    body = b'{"model": "m", "messages": []}'
    with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.sendall(HEAD.format(length=len(body)).encode())
        for part in (body[:10], body[10:20], body[20:]):
            time.sleep(0.3)
            sock.sendall(part)
        sock.settimeout(10)
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert upstream.last.body == body
