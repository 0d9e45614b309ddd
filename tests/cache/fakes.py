"""An upstream whose every answer is numbered, so an answer from the cache is recognisable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import openai
from aiohttp import web

from tests.fakes import FakeUpstream, Recorded, chunk, json_response, sse, stream_response

USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
MESSAGES = [{"role": "user", "content": "What is a cache?"}]


def numbered(upstream: FakeUpstream, delay: float = 0.0, finish: str = "stop") -> None:
    """Answer chat, completions, embeddings and responses with `answer N` (N: call number)."""

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        n = len(upstream.requests)
        if delay:
            await asyncio.sleep(delay)
        body = rec.json()
        text = f"answer {n}"
        path = rec.path
        usage = (body.get("stream_options") or {}).get("include_usage")
        if path.endswith("/chat/completions"):
            if body.get("stream"):
                chunks: list[Any] = [chunk(role="assistant", content=""), chunk(text)]
                chunks.append(chunk(finish=finish))
                if usage:
                    chunks.append({**chunk(), "choices": [], "usage": USAGE})
                return await stream_response(request, sse(*chunks))
            return await json_response(chat_reply(text, finish))
        if path.endswith("/completions"):
            return await json_response(text_reply(text))
        if path.endswith("/embeddings"):
            return await json_response(embedding_reply(n))
        if path.endswith("/responses"):
            reply = response_reply(text)
            if body.get("stream"):
                return await stream_response(request, response_stream(reply))
            return await json_response(reply)
        return await json_response({"path": path})

    upstream.handler = handler


def chat_reply(text: str, finish: str = "stop") -> dict[str, Any]:
    message = {"role": "assistant", "content": text}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": USAGE,
    }


def text_reply(text: str) -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "length"}],
        "usage": USAGE,
    }


def embedding_reply(n: int) -> dict[str, Any]:
    return {
        "object": "list",
        "model": "text-embedding-3-small",
        "data": [{"object": "embedding", "index": 0, "embedding": [float(n), 0.5, -0.25]}],
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }


def response_reply(text: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": []}
    item = {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed"}
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "status": "completed",
        "model": "gpt-4o-mini",
        "output": [{**item, "content": [part]}],
        "usage": {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13},
    }


def response_stream(reply: dict[str, Any]) -> list[bytes]:
    text = reply["output"][0]["content"][0]["text"]
    events = [
        {"type": "response.created", "sequence_number": 0, "response": {**reply, "output": []}},
        {
            "type": "response.output_text.delta",
            "sequence_number": 1,
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": text,
        },
        {"type": "response.completed", "sequence_number": 2, "response": reply},
    ]
    return sse(*events)[:-1]


def sdk(url: str, key: str = "fk-test", **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=url + "/v1", api_key=key, max_retries=0, default_headers=headers or None
    )


def ask(client: openai.OpenAI, stream: bool = False, **extra: Any) -> tuple[str, str]:
    """(the answer's text, its x-aifd-cache header) for the chat question, cache asked for."""
    body = {"caching": True, **extra}
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=stream,
        extra_body=body,  # type: ignore[arg-type]
    )
    header = raw.headers.get("x-aifd-cache", "")
    reply = raw.parse()
    if not stream:
        return reply.choices[0].message.content or "", header
    text = "".join(part.choices[0].delta.content or "" for part in reply if part.choices)
    return text, header


Ask = Callable[..., tuple[str, str]]
