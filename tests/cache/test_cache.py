"""The response cache end to end: the official SDK through the real gateway to a fake upstream."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable

import httpx
import openai
import pytest

from tests.cache.fakes import MESSAGES, ask, numbered, sdk
from tests.fakes import FakeUpstream, ProxyServer

ProxyFactory = Callable[..., ProxyServer]


@pytest.fixture
def gateway(upstream: FakeUpstream, proxy_factory: ProxyFactory) -> ProxyServer:
    numbered(upstream)
    return proxy_factory(
        OPENAI_BASE_URL=upstream.url, OPENAI_API_KEY="sk-real", FORWARD_KEY="fk-test"
    )


def test_second_identical_request_makes_no_upstream_call(
    gateway: ProxyServer, upstream: FakeUpstream
) -> None:
    client = sdk(gateway.url)
    assert ask(client) == ("answer 1", "miss")
    assert ask(client) == ("answer 1", "hit")
    assert len(upstream.requests) == 1


def test_second_identical_streamed_request_makes_no_upstream_call(
    gateway: ProxyServer, upstream: FakeUpstream
) -> None:
    client = sdk(gateway.url)
    assert ask(client, stream=True) == ("answer 1", "miss")
    assert ask(client, stream=True) == ("answer 1", "hit")
    assert len(upstream.requests) == 1


def test_streamed_hit_is_sse_with_done_and_usage_when_asked(
    gateway: ProxyServer, upstream: FakeUpstream
) -> None:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "caching": True}
    headers = {"authorization": "Bearer fk-test"}
    first = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=headers)
    assert first.headers["x-aifd-cache"] == "miss"
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    hit = httpx.post(gateway.url + "/v1/chat/completions", json=streamed, headers=headers)
    assert hit.headers["x-aifd-cache"] == "hit"
    assert hit.headers["content-type"].startswith("text/event-stream")
    assert hit.text.endswith("data: [DONE]\n\n")
    assert '"usage":{"prompt_tokens":9' in hit.text
    plain = httpx.post(
        gateway.url + "/v1/chat/completions", json={**body, "stream": True}, headers=headers
    )
    assert plain.headers["x-aifd-cache"] == "hit"
    assert '"usage":{' not in plain.text  # not asked for: not sent
    assert len(upstream.requests) == 1


def test_streamed_entry_answers_a_non_streamed_request(
    gateway: ProxyServer, upstream: FakeUpstream
) -> None:
    client = sdk(gateway.url)
    assert ask(client, stream=True) == ("answer 1", "miss")
    assert ask(client) == ("answer 1", "hit")
    assert len(upstream.requests) == 1


def test_non_streamed_entry_answers_a_streamed_request(
    gateway: ProxyServer, upstream: FakeUpstream
) -> None:
    client = sdk(gateway.url)
    assert ask(client) == ("answer 1", "miss")
    assert ask(client, stream=True) == ("answer 1", "hit")
    assert len(upstream.requests) == 1


def test_caching_field_never_reaches_the_upstream(
    gateway: ProxyServer, upstream: FakeUpstream
) -> None:
    client = sdk(gateway.url)
    ask(client)
    ask(client, caching=False)
    assert len(upstream.requests) == 2
    for request in upstream.requests:
        assert "caching" not in request.json()
        assert request.json()["messages"] == MESSAGES


def test_without_opt_in_nothing_is_cached(gateway: ProxyServer, upstream: FakeUpstream) -> None:
    client = sdk(gateway.url)
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=MESSAGES,  # type: ignore[arg-type]
        )
        assert raw.headers["x-aifd-cache"] == "bypass"
    assert len(upstream.requests) == 2


def test_header_opts_in_and_key_order_does_not_matter(
    gateway: ProxyServer, upstream: FakeUpstream
) -> None:
    headers = {"authorization": "Bearer fk-test", "x-aifd-cache": "true"}
    url = gateway.url + "/v1/chat/completions"
    one = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "user": "a"}'
    two = b'{"messages":[{"content":"hi","role":"user"}],"model":"gpt-4o-mini","user":"b"}'
    first = httpx.post(url, content=one, headers={**headers, "content-type": "application/json"})
    second = httpx.post(url, content=two, headers={**headers, "content-type": "application/json"})
    assert (first.headers["x-aifd-cache"], second.headers["x-aifd-cache"]) == ("miss", "hit")
    assert second.json()["choices"][0]["message"]["content"] == "answer 1"
    assert len(upstream.requests) == 1
    assert "x-aifd-cache" not in upstream.requests[0].headers


def test_cache_routes_cache_by_default(upstream: FakeUpstream, proxy_factory: ProxyFactory) -> None:
    numbered(upstream)
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        CACHE_ROUTES='["/v1/chat/completions"]',
        DEFAULT_REQUEST_CACHING_VALUE="true",
    )
    client = sdk(proxy.url, key="sk-client")
    texts = [
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        .choices[0]
        .message.content
        for _ in range(2)
    ]
    assert texts == ["answer 1", "answer 1"]
    assert ask(client, caching=False)[1] == "bypass"  # the request's own say wins
    assert len(upstream.requests) == 2


def test_two_clients_do_not_share_entries(
    upstream: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    numbered(upstream)
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url, OPENAI_API_KEY="sk-real", FORWARD_KEY="fk-a,fk-b"
    )
    assert ask(sdk(proxy.url, key="fk-a")) == ("answer 1", "miss")
    assert ask(sdk(proxy.url, key="fk-b")) == ("answer 2", "miss")
    assert ask(sdk(proxy.url, key="sk-relayed")) == ("answer 3", "miss")
    assert ask(sdk(proxy.url, key="fk-b")) == ("answer 2", "hit")
    assert len(upstream.requests) == 3


def test_shared_scope_serves_every_client(
    upstream: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    numbered(upstream)
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real",
        FORWARD_KEY="fk-a,fk-b",
        CACHE_SCOPE="shared",
    )
    assert ask(sdk(proxy.url, key="fk-a")) == ("answer 1", "miss")
    assert ask(sdk(proxy.url, key="fk-b")) == ("answer 1", "hit")
    assert len(upstream.requests) == 1


def test_twenty_concurrent_identical_requests_make_one_upstream_call(
    upstream: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    numbered(upstream, delay=0.3)
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url, OPENAI_API_KEY="sk-real", FORWARD_KEY="fk-test"
    )

    async def burst() -> list[tuple[str, str]]:
        client = openai.AsyncOpenAI(base_url=proxy.url + "/v1", api_key="fk-test", max_retries=0)

        async def one(stream: bool) -> tuple[str, str]:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=stream,
                extra_body={"caching": True},  # type: ignore[arg-type]
            )
            parsed = raw.parse()
            reply = await parsed if inspect.isawaitable(parsed) else parsed
            if stream:
                text = "".join([c.choices[0].delta.content or "" async for c in reply if c.choices])
            else:
                text = reply.choices[0].message.content
            return text, raw.headers["x-aifd-cache"]

        try:
            return list(await asyncio.gather(*(one(i % 2 == 0) for i in range(20))))
        finally:
            await client.close()

    answers = asyncio.run(burst())
    assert len(upstream.requests) == 1
    assert {text for text, _ in answers} == {"answer 1"}
    assert sorted(header for _, header in answers) == ["hit"] * 19 + ["miss"]


def test_with_cache_wait_zero_identical_requests_do_not_wait(
    upstream: FakeUpstream, proxy_factory: ProxyFactory
) -> None:
    numbered(upstream, delay=0.3)
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url,
        OPENAI_API_KEY="sk-real",
        FORWARD_KEY="fk-test",
        CACHE_WAIT="0",
    )

    async def burst() -> list[str]:
        async with httpx.AsyncClient(timeout=10) as client:

            async def one() -> str:
                reply = await client.post(
                    proxy.url + "/v1/chat/completions",
                    json={"model": "gpt-4o-mini", "messages": MESSAGES, "caching": True},
                    headers={"authorization": "Bearer fk-test"},
                )
                return reply.headers["x-aifd-cache"]

            return list(await asyncio.gather(*(one() for _ in range(4))))

    assert asyncio.run(burst()) == ["miss"] * 4
    assert len(upstream.requests) == 4


@pytest.mark.parametrize("finish", ["content_filter", "function_call"])
def test_unfinished_answers_are_not_stored(
    upstream: FakeUpstream, proxy_factory: ProxyFactory, finish: str
) -> None:
    numbered(upstream, finish=finish)
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url, OPENAI_API_KEY="sk-real", FORWARD_KEY="fk-test"
    )
    client = sdk(proxy.url)
    assert ask(client) == ("answer 1", "miss")
    assert ask(client, stream=True) == ("answer 2", "miss")
    assert len(upstream.requests) == 2


def test_errors_are_not_stored(upstream: FakeUpstream, proxy_factory: ProxyFactory) -> None:
    from tests.fakes import json_response

    async def failing(request, rec):  # type: ignore[no-untyped-def]
        return await json_response({"error": {"message": "bad model"}}, status=400)

    upstream.handler = failing
    proxy = proxy_factory(
        OPENAI_BASE_URL=upstream.url, OPENAI_API_KEY="sk-real", FORWARD_KEY="fk-test"
    )
    client = sdk(proxy.url)
    for _ in range(2):
        with pytest.raises(openai.BadRequestError):
            ask(client)
    assert len(upstream.requests) == 2


def test_completions_embeddings_and_responses_are_cached(
    gateway: ProxyServer, upstream: FakeUpstream
) -> None:
    client = sdk(gateway.url)
    extra = {"caching": True}
    texts = [
        client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi", extra_body=extra)
        .choices[0]
        .text
        for _ in range(2)
    ]
    vectors = [
        client.embeddings.create(model="text-embedding-3-small", input="hi", extra_body=extra)
        .data[0]
        .embedding
        for _ in range(2)
    ]
    replies = [
        client.responses.create(model="gpt-4o-mini", input="hi", extra_body=extra).output_text
        for _ in range(2)
    ]
    streamed = client.responses.create(
        model="gpt-4o-mini", input="hi", stream=True, extra_body=extra
    )
    events = list(streamed)
    assert texts == ["answer 1", "answer 1"]
    assert vectors == [[2.0, 0.5, -0.25]] * 2
    assert replies == ["answer 3", "answer 3"]
    assert events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "answer 3"
    assert len(upstream.requests) == 3


def test_streamed_responses_entry_answers_json(
    gateway: ProxyServer, upstream: FakeUpstream
) -> None:
    client = sdk(gateway.url)
    extra = {"caching": True}
    events = list(
        client.responses.create(model="gpt-4o-mini", input="q", stream=True, extra_body=extra)
    )
    assert events[-1].type == "response.completed"
    reply = client.responses.create(model="gpt-4o-mini", input="q", extra_body=extra)
    assert reply.output_text == "answer 1"
    assert len(upstream.requests) == 1


def test_stream_entry_replays_without_usage_the_client_did_not_ask_for(
    gateway: ProxyServer, upstream: FakeUpstream
) -> None:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "caching": True, "stream": True}
    headers = {"authorization": "Bearer fk-test"}
    url = gateway.url + "/v1/chat/completions"
    asked = {**body, "stream_options": {"include_usage": True}}
    first = httpx.post(url, json=asked, headers=headers)
    again = httpx.post(url, json=asked, headers=headers)
    plain = httpx.post(url, json=body, headers=headers)
    assert [r.headers["x-aifd-cache"] for r in (first, again, plain)] == ["miss", "hit", "hit"]
    assert again.text == first.text  # the very events the upstream sent
    assert '"usage":{' in again.text and '"usage":{' not in plain.text
    assert plain.text.endswith("data: [DONE]\n\n")
    assert len(upstream.requests) == 1


def test_streamed_completion_hit_from_a_json_entry(
    gateway: ProxyServer, upstream: FakeUpstream
) -> None:
    client = sdk(gateway.url)
    extra = {"caching": True}
    first = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="p", extra_body=extra)
    parts = list(
        client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt="p", stream=True, extra_body=extra
        )
    )
    assert first.choices[0].text == "".join(p.choices[0].text for p in parts) == "answer 1"
    assert parts[-1].choices[0].finish_reason == "length"
    assert len(upstream.requests) == 1
