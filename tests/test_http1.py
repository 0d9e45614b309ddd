"""The built-in HTTP/1.1 client against raw upstreams on loopback that misbehave on purpose."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from ai_forward.http1 import Answer, ConnectFailed, PoolExhausted, request_head
from ai_forward.http1_pool import Http1Pool

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


@asynccontextmanager
async def raw_upstream(handler: Handler) -> AsyncIterator[tuple[URL, list[bytes]]]:
    """A TCP server running `handler` per connection; yields its URL and the requests'
    heads it read (one entry per connection opened)."""
    connections: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(b"")
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield URL(f"http://127.0.0.1:{port}/v1/x"), connections
    finally:
        server.close()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        await read_head(reader)
        writer.write(OK)
        await writer.drain()


def pool(**options: float) -> Http1Pool:
    return Http1Pool(
        limit=int(options.get("limit", 10)),
        pool_timeout=options.get("pool_timeout", 1.0),
        connect_timeout=options.get("connect_timeout", 1.0),
    )


async def body_of(answer: Answer) -> bytes:
    return b"".join([chunk async for chunk in answer.iter_any()])


def test_the_request_head_names_host_and_length_and_keeps_the_path_as_encoded() -> None:
    url = URL("http://example.test:8080/v1/a%2Fb?q=1%202", encoded=True)
    head = request_head("POST", url, [(b"authorization", b"Bearer sk")], b"{}")
    assert head.startswith(b"POST /v1/a%2Fb?q=1%202 HTTP/1.1\r\nhost: example.test:8080\r\n")
    assert b"content-length: 2\r\n" in head and b"authorization: Bearer sk\r\n" in head
    assert head.endswith(b"\r\n\r\n")
    # No body (a GET): no Content-Length at all; a default port is left out of Host.
    head = request_head("GET", URL("https://example.test/v1/models"), [], None)
    assert b"content-length" not in head and b"host: example.test\r\n" in head


def test_sequential_requests_reuse_one_connection() -> None:
    async def run() -> int:
        async with raw_upstream(keep_answering) as (url, connections):
            client = pool()
            for _ in range(5):
                answer = await client.request("POST", url, [], b"{}")
                assert answer.status == 200 and await body_of(answer) == b"{}"
                assert answer.headers["Content-Type"] == "application/json"
            client.close()
            return len(connections)

    assert asyncio.run(run()) == 1


def test_a_connection_the_upstream_closed_while_idle_is_replaced_without_an_error() -> None:
    async def one_answer_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_head(reader)
        writer.write(OK)  # keep-alive by default, yet closed right after
        await writer.drain()

    async def run() -> int:
        async with raw_upstream(one_answer_then_close) as (url, connections):
            client = pool()
            for _ in range(3):
                answer = await client.request("POST", url, [], b"{}")
                assert await body_of(answer) == b"{}"
                await asyncio.sleep(0.05)  # the close arrives while the connection is idle
            client.close()
            return len(connections)

    assert asyncio.run(run()) == 3


def test_a_body_without_length_ends_with_the_connection_and_is_whole() -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\npart one, ")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"part two")
        await writer.drain()

    async def run() -> bytes:
        async with raw_upstream(until_close) as (url, _):
            client = pool()
            answer = await client.request("GET", url, [], None)
            body = await body_of(answer)
            assert client.in_use == 0
            return body

    assert asyncio.run(run()) == b"part one, part two"


def test_chunked_bodies_arrive_decoded_and_a_head_answer_has_no_body() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        if head.startswith(b"HEAD"):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            writer.write(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async def run() -> tuple[bytes, bytes, int]:
        async with raw_upstream(chunked) as (url, _):
            client = pool()
            body = await body_of(await client.request("GET", url, [], None))
            empty = await asyncio.wait_for(
                body_of(await client.request("HEAD", url, [], None)), 0.5
            )
            return body, empty, client.in_use

    assert asyncio.run(run()) == (b"hello world", b"", 0)


def test_an_upstream_that_closes_mid_body_is_a_payload_error_and_frees_its_slot() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")
        await writer.drain()

    async def run() -> tuple[bytes, int]:
        async with raw_upstream(cut) as (url, _):
            client = pool()
            answer = await client.request("GET", url, [], None)
            got = b""
            with pytest.raises(aiohttp.ClientPayloadError):
                async for chunk in answer.iter_any():
                    got += chunk
            return got, client.in_use

    assert asyncio.run(run()) == (b"only this", 0)


def test_no_answer_at_all_and_garbage_are_errors_never_hangs() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async def run() -> int:
        client = pool()
        async with raw_upstream(hang_up) as (url, _):
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await client.request("GET", url, [], None)
        async with raw_upstream(garbage) as (url, _):
            with pytest.raises(aiohttp.ClientPayloadError):
                await asyncio.wait_for(client.request("GET", url, [], None), 1)
        return client.in_use

    assert asyncio.run(run()) == 0


def test_refused_and_unroutable_connections_are_connect_errors() -> None:
    async def run() -> None:
        async with raw_upstream(keep_answering) as (url, _):
            pass  # closed: its port now refuses
        client = pool()
        with pytest.raises(ConnectFailed):
            await client.request("GET", url, [], None)
        assert client.in_use == 0

    asyncio.run(run())


def test_the_pool_bounds_requests_in_flight_and_a_waiter_gets_the_freed_slot() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_head(reader)
            await asyncio.sleep(0.2)
            writer.write(OK)
            await writer.drain()

    async def run() -> None:
        async with raw_upstream(slow) as (url, connections):
            client = pool(limit=1, pool_timeout=0.05)
            first = asyncio.ensure_future(client.request("GET", url, [], None))
            await asyncio.sleep(0.01)
            with pytest.raises(PoolExhausted):
                await client.request("GET", url, [], None)
            patient = pool(limit=1, pool_timeout=2)
            answers = await asyncio.gather(
                *(patient.request("GET", url, [], None) for _ in range(3))
            )
            # Each waiter got the connection the one before it gave back.
            assert [await body_of(a) for a in answers] == [b"{}"] * 3
            assert patient.in_use == 0 and len(connections) == 2
            await body_of(await first)
            assert client.in_use == 0

    asyncio.run(run())


def test_a_cancelled_request_gives_its_slot_back_and_its_connection_is_not_reused() -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        await asyncio.sleep(5)

    async def run() -> None:
        async with raw_upstream(never) as (url, connections):
            client = pool(limit=1)
            task = asyncio.ensure_future(client.request("GET", url, [], None))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert client.in_use == 0
            task = asyncio.ensure_future(client.request("GET", url, [], None))
            await asyncio.sleep(0.05)
            assert len(connections) == 2  # a new connection, not the one left mid-answer
            task.cancel()

    asyncio.run(run())


def test_a_slow_reader_stops_the_socket_being_read_and_loses_nothing() -> None:
    size = 4 << 20

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        writer.write(b"x" * size)
        await writer.drain()
        await asyncio.sleep(2)

    async def run() -> tuple[int, int]:
        async with raw_upstream(big) as (url, _):
            client = pool()
            answer = await client.request("GET", url, [], None)
            await asyncio.sleep(0.3)  # the upstream sent it all; the reader took none yet
            most = max(answer._buffered, 0)
            total = 0
            async for chunk in answer.iter_any():
                total += len(chunk)
            return most, total

    most, total = asyncio.run(run())
    assert total == size
    assert most < 2 << 20  # paused near the high-water mark, not the whole 4 MiB


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for `localhost` (and 127.0.0.1), and its key, made with openssl."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_https_upstreams_are_verified_against_the_trusted_certificates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def run() -> None:
        server = await asyncio.start_server(keep_answering, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        url = URL(f"https://localhost:{port}/v1/x")
        try:
            # Not trusted (the system's CAs only): refused, with the reason.
            with pytest.raises(ConnectFailed, match="certificate"):
                await pool().request("GET", url, [], None)
            # Trusted through SSL_CERT_FILE, as OpenSSL reads it: served over TLS.
            monkeypatch.setenv("SSL_CERT_FILE", str(cert))
            client = pool()
            answer = await client.request("POST", url, [], b"{}")
            assert answer.status == 200 and await body_of(answer) == b"{}"
            client.close()
        finally:
            server.close()

    asyncio.run(run())


def test_only_an_idempotent_request_is_sent_again_when_a_reused_connection_drops_it() -> None:
    async def answer_once_then_drop(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_head(reader)
        writer.write(OK)
        await writer.drain()
        await read_head(reader)  # the second request on this connection: read, never answered

    async def run() -> None:
        async with raw_upstream(answer_once_then_drop) as (url, connections):
            client = pool()
            assert await body_of(await client.request("GET", url, [], None)) == b"{}"
            # Its connection is reused for another GET: dropped, sent again on a new one.
            assert await body_of(await client.request("GET", url, [], None)) == b"{}"
            assert len(connections) == 2
            # A POST that may have been acted on is not sent twice: the caller hears of it.
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await client.request("POST", url, [], b"{}")
            assert len(connections) == 2
            assert client.in_use == 0

    asyncio.run(run())


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/x?q=1\r\nx-injected: 1", []),
        ("/v1/x", [(b"x-a", b"1\r\nx-injected: 1")]),
        ("/v1/x", [(b"x-a", b"1\nx-injected: 1")]),
        ("/v1/x", [(b"x-a\r", b"1")]),
    ],
)
def test_a_line_break_in_the_path_or_a_header_is_never_written_upstream(
    path: str, headers: list[tuple[bytes, bytes]]
) -> None:
    # Built as Origin.url builds every upstream URL (URL() itself drops CR and LF).
    route, _, query = path.partition("?")
    url = URL.build(
        scheme="http", authority="example.test", path=route, query_string=query, encoded=True
    )
    with pytest.raises(ValueError, match="line break"):
        request_head("POST", url, headers, b"{}")
