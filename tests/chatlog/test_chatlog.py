"""Chat logs end to end: the openai SDK through the real proxy, records read from disk."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import openai
import pytest
from aiohttp import web

from ai_forward.keys import key_fingerprint
from ai_forward.redact import mask
from tests.chatlog.fakes import (
    USAGE,
    all_log_bytes,
    embeddings,
    log_files,
    read_records,
    streamed,
    tool_call_chunks,
    wait_records,
)
from tests.fakes import (
    FakeUpstream,
    ProxyServer,
    Recorded,
    chunk,
    completion,
    free_port,
    json_response,
    sse,
    stream_response,
)

Factory = Callable[..., ProxyServer]
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "Log"


@pytest.fixture
def logged(upstream: FakeUpstream, proxy_factory: Factory, log_dir: Path) -> ProxyServer:
    return proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real-secret-1",
        FORWARD_KEY="fk-forward-secret",
        LOG_CHAT="true",
        LOG_DIR=log_dir,
    )


def sdk(proxy: ProxyServer, key: str = "fk-forward-secret", prefix: str = "") -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + prefix + "/v1", api_key=key, max_retries=0)


def only(log_dir: Path) -> dict[str, Any]:
    records = wait_records(log_dir, 1)
    assert len(records) == 1, records
    return records[0]


def test_non_streamed_chat_record_has_request_reply_and_context(
    logged: ProxyServer, log_dir: Path
) -> None:
    reply = sdk(logged).chat.completions.create(
        model="gpt-4o-mini", messages=HI, temperature=0.3, user="u-1"
    )
    assert reply.choices[0].message.content == "Hello!"
    record = only(log_dir)
    assert record["route"] == "openai"
    assert record["path"] == "/v1/chat/completions"
    assert record["kind"] == "chat"
    assert record["client_ip"] == "127.0.0.1"
    assert record["key"] == key_fingerprint("fk-forward-secret")
    assert record["user"] is None
    assert record["model"] == "gpt-4o-mini"
    assert record["params"] == {"model": "gpt-4o-mini", "temperature": 0.3, "user": "u-1"}
    assert record["messages"] == HI
    assert record["reply"]["choices"][0]["message"]["content"] == "Hello!"
    assert record["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert (record["status"], record["complete"], record["error"]) == (200, True, None)
    assert record["duration_ms"] >= 0
    assert record["time"].endswith("+00:00")
    assert [p.parent.name for p in log_files(log_dir)] == ["openai"]


def test_streamed_chat_is_reassembled_from_the_first_chunk_on(
    upstream: FakeUpstream, logged: ProxyServer, log_dir: Path
) -> None:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await streamed(
            request,
            rec,
            chunk("Bon", role="assistant", reasoning_content="think "),
            chunk("jour", reasoning_content="hard"),
            chunk(" !"),
            chunk(finish="stop"),
        )

    upstream.handler = handler
    parts = list(sdk(logged).chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True))
    assert "".join(p.choices[0].delta.content or "" for p in parts) == "Bonjour !"
    assert all(p.usage is None for p in parts), "the client did not ask for usage"
    record = only(log_dir)
    message = record["reply"]["choices"][0]["message"]
    assert message == {
        "role": "assistant",
        "content": "Bonjour !",
        "reasoning_content": "think hard",
    }
    assert record["reply"]["choices"][0]["finish_reason"] == "stop"
    assert record["reply"]["object"] == "chat.completion"
    assert record["usage"] == USAGE
    assert record["params"] == {"model": "gpt-4o-mini", "stream": True}, "as the client sent it"
    assert record["complete"] is True


def test_tool_calls_split_over_many_chunks_are_joined(
    upstream: FakeUpstream, logged: ProxyServer, log_dir: Path
) -> None:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await streamed(request, rec, *tool_call_chunks())

    upstream.handler = handler
    list(sdk(logged).chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True))
    choice = only(log_dir)["reply"]["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
        },
        {
            "id": "call_b",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city": "Tokyo"}'},
        },
    ]


def test_two_choices_are_reassembled_separately(
    upstream: FakeUpstream, logged: ProxyServer, log_dir: Path
) -> None:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await streamed(
            request,
            rec,
            chunk("A", index=0, role="assistant"),
            chunk("B", index=1, role="assistant"),
            chunk("a", index=0),
            chunk("b", index=1),
            chunk(index=1, finish="length"),
            chunk(index=0, finish="stop"),
        )

    upstream.handler = handler
    list(sdk(logged).chat.completions.create(model="m", messages=HI, stream=True, n=2))
    record = only(log_dir)
    choices = record["reply"]["choices"]
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in choices] == [
        (0, "Aa", "stop"),
        (1, "Bb", "length"),
    ]
    assert record["params"]["n"] == 2


def test_stream_cut_by_upstream_is_recorded_incomplete(
    upstream: FakeUpstream, logged: ProxyServer, log_dir: Path
) -> None:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        events = sse(chunk("par", role="assistant"), chunk("tial"), chunk("never"))
        return await stream_response(request, events, cut_after=2)

    upstream.handler = handler
    with pytest.raises(openai.APIError):
        list(sdk(logged).chat.completions.create(model="m", messages=HI, stream=True))
    record = only(log_dir)
    assert record["complete"] is False
    assert "upstream stream broke" in record["error"]
    assert record["reply"]["choices"][0]["message"]["content"] == "partial"
    assert record["reply"]["choices"][0]["finish_reason"] is None


def test_client_disconnect_mid_stream_is_recorded_incomplete(
    upstream: FakeUpstream, logged: ProxyServer, log_dir: Path
) -> None:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await stream_response(request, sse(*(chunk("x") for _ in range(100))), delay=0.05)

    upstream.handler = handler

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                logged.url + "/v1/chat/completions",
                json={"model": "m", "messages": HI, "stream": True},
                headers={"authorization": "Bearer fk-forward-secret"},
            )
            for _ in range(6):  # three events: data line and blank line each
                await response.content.readline()
            await asyncio.sleep(0.4)
            response.close()

    asyncio.run(main())
    record = only(log_dir)
    assert record["complete"] is False
    assert record["error"] == "client disconnected"
    content = record["reply"]["choices"][0]["message"]["content"]
    assert set(content) == {"x"} and 3 <= len(content) < 100


def test_embeddings_record_inputs_and_usage_not_vectors(
    upstream: FakeUpstream, logged: ProxyServer, log_dir: Path
) -> None:
    upstream.handler = embeddings
    result = sdk(logged).embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 64
    record = only(log_dir)
    assert record["kind"] == "embedding"
    assert record["input"] == ["a", "b"]
    assert record["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert record["reply"]["data"] == [
        {"object": "embedding", "index": 0},
        {"object": "embedding", "index": 1},
    ]
    assert "0.25" not in all_log_bytes(log_dir).decode()


def test_streamed_legacy_completion_joins_text(
    upstream: FakeUpstream, logged: ProxyServer, log_dir: Path
) -> None:
    def piece(text: str, finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "finish_reason": finish}
        return {"id": "cmpl-1", "object": "text_completion", "model": "m", "choices": [choice]}

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await streamed(request, rec, piece("Once"), piece(" upon"), piece("", "length"))

    upstream.handler = handler
    list(sdk(logged).completions.create(model="m", prompt="Tell", stream=True))
    record = only(log_dir)
    assert record["kind"] == "completion"
    assert record["prompt"] == "Tell"
    assert record["reply"]["choices"] == [
        {"index": 0, "finish_reason": "length", "text": "Once upon"}
    ]
    assert upstream.last.json()["stream_options"] == {"include_usage": True}
    assert record["usage"] == USAGE


def test_upstream_error_reply_is_recorded_with_its_status(
    upstream: FakeUpstream, logged: ProxyServer, log_dir: Path
) -> None:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        error = {"message": "model not found", "type": "invalid_request_error"}
        return await json_response({"error": error}, status=404)

    upstream.handler = handler
    with pytest.raises(openai.NotFoundError):
        sdk(logged).chat.completions.create(model="nope", messages=HI)
    record = only(log_dir)
    assert record["status"] == 404
    assert record["reply"]["error"]["message"] == "model not found"


def test_only_model_exchanges_are_recorded(
    upstream: FakeUpstream, logged: ProxyServer, log_dir: Path
) -> None:
    headers = {"authorization": "Bearer fk-forward-secret"}
    assert httpx.get(logged.url + "/v1/models", headers=headers).status_code == 200
    assert httpx.get(logged.url + "/v1/chat/completions", headers=headers).status_code == 200
    sdk(logged).chat.completions.create(model="m", messages=HI)
    assert [r["kind"] for r in wait_records(log_dir, 1)] == ["chat"]


def test_nothing_is_written_when_chat_logs_are_off(
    upstream: FakeUpstream, proxy_factory: Factory, log_dir: Path
) -> None:
    proxy = proxy_factory(OPENAI_BASE_URL=upstream.url, LOG_DIR=log_dir)
    sdk(proxy, "sk-any").chat.completions.create(model="m", messages=HI)
    proxy.stop()
    assert not log_dir.exists()


def test_keys_never_appear_in_records(
    upstream: FakeUpstream, proxy_factory: Factory, log_dir: Path
) -> None:
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real-secret-1",
        FORWARD_KEY="fk-forward-secret",
        LOG_CHAT="true",
        LOG_DIR=log_dir,
    )

    async def echo_key(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await json_response(completion("your key is " + rec.headers["authorization"]))

    upstream.handler = echo_key
    pasted = [{"role": "user", "content": "my key is fk-forward-secret, keep it"}]
    sdk(proxy).chat.completions.create(
        model="m",
        messages=pasted,  # type: ignore[arg-type]
        extra_body={"api_key": "sk-in-body-1", "metadata": {"Authorization": "Bearer sk-deep"}},
    )
    sdk(proxy, "sk-clients-own-key").chat.completions.create(model="m", messages=HI)
    proxy.stop()
    text = all_log_bytes(log_dir).decode()
    for secret in ("fk-forward-secret", "sk-real-secret-1", "sk-in-body-1", "sk-deep"):
        assert secret not in text
    assert "sk-clients-own-key" not in text
    first, second = read_records(log_dir)
    assert first["messages"][0]["content"] == "my key is [redacted], keep it"
    assert first["params"]["api_key"] == "[redacted]"
    assert first["params"]["metadata"] == {"Authorization": "[redacted]"}
    # The upstream's echo is masked on its way in, before the record is made.
    reply = first["reply"]["choices"][0]["message"]["content"]
    assert reply == "your key is Bearer " + mask(len("sk-real-secret-1")).decode()
    assert second["key"] == key_fingerprint("sk-clients-own-key")


def test_two_routes_write_to_their_own_folders(proxy_factory: Factory, log_dir: Path) -> None:
    main, local = FakeUpstream().start(), FakeUpstream().start()
    try:
        proxy = proxy_factory(
            OPENAI_BASE_URL=main.url,
            EXTRA_BASE_URL=local.url,
            EXTRA_ROUTE_PREFIX="/localai",
            LOG_CHAT="true",
            LOG_DIR=log_dir,
        )
        sdk(proxy, "k").chat.completions.create(model="gpt", messages=HI)
        sdk(proxy, "k", prefix="/localai").chat.completions.create(model="llama", messages=HI)
        sdk(proxy, "k", prefix="/localai").chat.completions.create(model="llama", messages=HI)
        proxy.stop()
    finally:
        main.stop()
        local.stop()
    folders = {p.parent.name: p for p in log_files(log_dir)}
    assert sorted(folders) == ["localai", "openai"]
    by_folder = {
        name: [json.loads(line)["model"] for line in path.read_text().splitlines()]
        for name, path in folders.items()
    }
    assert by_folder == {"openai": ["gpt"], "localai": ["llama", "llama"]}
    assert {r["path"] for r in read_records(log_dir)} == {
        "/v1/chat/completions",
        "/localai/v1/chat/completions",
    }


def test_hundreds_of_concurrent_exchanges_none_lost(
    upstream: FakeUpstream, logged: ProxyServer, log_dir: Path
) -> None:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        said = rec.json()["messages"][0]["content"]
        if rec.json().get("stream"):
            return await streamed(request, rec, chunk(said, role="assistant"), chunk(finish="stop"))
        return await json_response(completion(said))

    upstream.handler = handler
    total = 300

    async def main() -> None:
        client = openai.AsyncOpenAI(
            base_url=logged.url + "/v1", api_key="fk-forward-secret", max_retries=0
        )
        semaphore = asyncio.Semaphore(100)

        async def one(i: int) -> None:
            async with semaphore:
                messages: Any = [{"role": "user", "content": f"message {i}"}]
                if i % 2:
                    stream = await client.chat.completions.create(
                        model="m", messages=messages, stream=True
                    )
                    _ = [part async for part in stream]
                else:
                    await client.chat.completions.create(model="m", messages=messages)

        await asyncio.gather(*(one(i) for i in range(total)))
        await client.close()

    asyncio.run(main())
    logged.stop()
    records = read_records(log_dir)
    assert len(records) == total
    said = sorted(r["reply"]["choices"][0]["message"]["content"] for r in records)
    assert said == sorted(f"message {i}" for i in range(total))
    assert all(
        r["messages"][0]["content"] == r["reply"]["choices"][0]["message"]["content"]
        for r in records
    )
    assert all(r["complete"] for r in records)


def test_responses_api_exchange_records_input_and_instructions(
    upstream: FakeUpstream, logged: ProxyServer, log_dir: Path
) -> None:
    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        return await json_response(
            {"id": "resp_1", "object": "response", "status": "completed", "output": []}
        )

    upstream.handler = handler
    response = httpx.post(
        logged.url + "/v1/responses",
        json={"model": "gpt-4.1", "input": "hello", "instructions": "be kind", "store": False},
        headers={"authorization": "Bearer fk-forward-secret"},
    )
    assert response.status_code == 200
    record = only(log_dir)
    assert record["kind"] == "response"
    assert (record["input"], record["instructions"]) == ("hello", "be kind")
    assert record["params"] == {"model": "gpt-4.1", "store": False}
    assert record["reply"]["status"] == "completed"


def test_unreachable_upstream_is_recorded_with_the_gateway_error(
    proxy_factory: Factory, log_dir: Path
) -> None:
    proxy = proxy_factory(
        OPENAI_BASE_URL=f"http://127.0.0.1:{free_port()}", LOG_CHAT="true", LOG_DIR=log_dir
    )
    with pytest.raises(openai.APIStatusError):
        sdk(proxy, "sk-whatever").chat.completions.create(model="m", messages=HI)
    record = only(log_dir)
    assert (record["status"], record["complete"], record["reply"]) == (502, False, None)
    assert "could not reach the upstream of route 'openai'" in record["error"]


def test_streamed_events_are_decoded_by_the_writer_thread_not_the_event_loop(
    upstream: FakeUpstream, logged: ProxyServer, log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import orjson

    decoded_in: list[tuple[str, int, bool]] = []  # thread, events decoded, with usage
    loads = orjson.loads

    def spying_loads(data: Any) -> Any:
        events = bytes(data).count(b"chat.completion.chunk")
        if events:
            thread = threading.current_thread().name
            decoded_in.append((thread, events, b'"usage"' in bytes(data)))
        return loads(data)

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        words = [chunk(f"w{i} ") for i in range(20)]
        return await streamed(request, rec, *words, chunk(finish="stop"))

    upstream.handler = handler
    monkeypatch.setattr(orjson, "loads", spying_loads)
    parts = list(sdk(logged).chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True))
    assert len(parts) == 21
    record = only(log_dir)
    assert record["reply"]["choices"][0]["message"]["content"] == "".join(
        f"w{i} " for i in range(20)
    )
    assert record["usage"] == USAGE and record["complete"] is True
    # The writer decodes every event (in one call); the request path only the one that
    # carries the usage (read for the limits and hidden from a client that did not ask for it).
    writer = [events for thread, events, _ in decoded_in if thread == "aifd-chat-log"]
    elsewhere = [(n, usage) for thread, n, usage in decoded_in if thread != "aifd-chat-log"]
    assert sum(writer) == 22
    assert all(n == 1 and usage for n, usage in elsewhere) and len(elsewhere) <= 2, decoded_in
