"""Fake upstream handlers for rate limit tests: replies that report token usage."""

from __future__ import annotations

from aiohttp import web

from tests.fakes import Handler, Recorded, chunk, completion, json_response, sse, stream_response


def usage_reporting(
    prompt_tokens: int = 10, completion_tokens: int = 20, *, words: int = 3, delay: float = 0.0
) -> Handler:
    """Chat completions reporting the given usage; streamed ones only when asked to.

    Streams send `words` content chunks of one 4-character token each.
    """

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        body = rec.json() if rec.body else {}
        if not body.get("stream"):
            return await json_response(
                completion(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
            )
        events = [chunk(role="assistant", content="")]
        events += [chunk("word") for _ in range(words)]
        events.append(chunk(finish="stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            events.append(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "choices": [],
                    "usage": usage,
                }
            )
        return await stream_response(request, sse(*events), delay=delay)

    return handler


async def no_usage(request: web.Request, rec: Recorded) -> web.StreamResponse:
    """A chat completion without a usage object (some compatible servers)."""
    reply = completion(content="x" * 40)
    del reply["usage"]
    return await json_response(reply)


async def refused(request: web.Request, rec: Recorded) -> web.StreamResponse:
    return await json_response(
        {"error": {"message": "bad", "type": "invalid_request_error"}}, status=400
    )
