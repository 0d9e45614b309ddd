"""Several models in one request (`"model": "a,b"`): asked in parallel, answered as one.

Streamed, the chunks of every model interleave as they arrive, each with its
own `model` and with `index` = the model's position; one `[DONE]` ends it.
Not streamed, `choices` holds one entry per model in order. A model that fails
(after its FALLBACKS, each asked in turn while no byte of it has come) shows up
as its own choice with `finish_reason: "error"` and an `error`; the others are
not affected. A choice's `model` is the model that answered it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ..errors import GatewayError
from ..exchange import FALLBACKS_OF, Exchange
from ..fallbacks.verdict import fallback_reason, worth_reading
from ..pipeline import Planner
from ..sse import DONE, EventTooLarge, SSEDecoder, encode_event
from ..upstream import Upstream, UpstreamRequest, UpstreamResponse
from .base import JSON, loads_object
from .reply import SSE_TYPE, Reply, read_all
from .router import Router, Target, include_usage

QUEUE_SIZE = 64
# One model's requests: its own, then its fallbacks', each with the model it asks for.
Chain = list[tuple[str, UpstreamRequest]]


class FanOut:
    def __init__(self, router: Router, targets: list[Target]) -> None:
        self.router = router
        self.targets = targets

    def plan(self, ex: Exchange, below: Planner) -> UpstreamRequest:
        body = ex.json() or {}
        stream = body.get("stream") is True
        sub_body = dict(body)
        if stream:  # every model reports usage, so that the total is known
            sub_body["stream_options"] = {
                **(body.get("stream_options") or {}),
                "include_usage": True,
            }
        chains = [self.chain(ex, t, sub_body) for t in self.targets]
        names = [t.model for t in self.targets]

        async def compose(upstream: Upstream) -> UpstreamResponse:
            if stream:
                merged = MergedStream(upstream, chains, names, include_usage(body))
                return Reply(200, [SSE_TYPE], merged.events(), merged)
            return await merge_replies(upstream, chains, names)

        return dataclasses.replace(chains[0][0][1], route="fan-out", compose=compose)

    def chain(self, ex: Exchange, target: Target, body: JSON) -> Chain:
        """The requests for `target`'s model and its fallbacks this exchange may use;
        a fallback its provider cannot take is left out."""
        chain = [(target.model, self.router.plan(ex, target, {**body, "model": target.model}))]
        fallbacks = ex.get(FALLBACKS_OF)
        for model in fallbacks(target.model) if fallbacks is not None else ():
            try:
                other = self.router.target(ex, model, self.router.provider_for(model))
                chain.append((model, self.router.plan(ex, other, {**body, "model": model})))
            except GatewayError:
                continue
        return chain


def error_of(status: int, body: bytes) -> JSON:
    error = (loads_object(body) or {}).get("error")
    if isinstance(error, dict):
        return error
    text = body[:300].decode("utf-8", "replace")
    return {"message": f"upstream answered {status}: {text}", "type": "upstream_error"}


def add_usage(total: JSON | None, usage: Any) -> JSON | None:
    if not isinstance(usage, dict):
        return total
    total = total or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        total[key] += int(usage.get(key) or 0)
    return total


async def ask_chain(upstream: Upstream, chain: Chain) -> tuple[str, int, bytes]:
    """The first answer in `chain` no later model should replace, and who gave it."""
    for step, (model, request) in enumerate(chain):
        status, body = await ask(upstream, request)
        if step == len(chain) - 1 or not fallback_reason(status, body):
            return model, status, body
    raise AssertionError("unreachable: a chain holds at least one request")


async def ask(upstream: Upstream, request: UpstreamRequest) -> tuple[int, bytes]:
    try:
        response = await upstream.send(request)
    except GatewayError as err:
        return err.status, err.body()
    try:
        body = await read_all(response)
    except (aiohttp.ClientError, TimeoutError) as exc:
        response.close()
        return 502, orjson.dumps({"error": {"message": f"upstream broke: {exc!r}"}})
    response.release()
    return response.status, body


async def merge_replies(
    upstream: Upstream, chains: list[Chain], names: list[str]
) -> UpstreamResponse:
    answered = await asyncio.gather(*(ask_chain(upstream, c) for c in chains))
    answers = [(status, body) for _, status, body in answered]
    choices: list[JSON] = []
    usage: JSON | None = None
    for index, (name, status, body) in enumerate(answered):
        reply = loads_object(body) if status < 400 else None
        if reply is None or not isinstance(reply.get("choices"), list) or not reply["choices"]:
            choices.append(error_choice(index, name, error_of(status, body)))
            continue
        choice = dict(reply["choices"][0])
        choices.append({**choice, "index": index, "model": name})
        usage = add_usage(usage, reply.get("usage"))
    if all(status >= 400 for status, _ in answers):
        return Reply.json(answers[0][0], answers[0][1])
    merged = {
        "id": f"chatcmpl-fanout-{time.time_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": ",".join(names),
        "choices": choices,
        "usage": usage,
    }
    return Reply.json(200, orjson.dumps(merged))


def error_choice(index: int, name: str, error: JSON) -> JSON:
    return {
        "index": index,
        "model": name,
        "message": {"role": "assistant", "content": None},
        "finish_reason": "error",
        "error": error,
    }


class MergedStream:
    """Pumps every model's stream into one bounded queue and emits their events in turn."""

    def __init__(
        self, upstream: Upstream, chains: list[Chain], names: list[str], usage: bool
    ) -> None:
        self.upstream = upstream
        self.chains = chains
        self.names = list(names)  # each becomes the model that answers
        self.include_usage = usage
        self.queue: asyncio.Queue[tuple[int, JSON | None]] = asyncio.Queue(QUEUE_SIZE)
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = False
        self.id = f"chatcmpl-fanout-{time.time_ns()}"
        self.created = int(time.time())

    async def answer(self, index: int) -> UpstreamResponse | JSON:
        """The first streamed answer of the model's chain, else the last error."""
        chain = self.chains[index]
        error: JSON = {}
        for step, (model, request) in enumerate(chain):
            last = step == len(chain) - 1
            try:
                response = await self.upstream.send(request)
            except GatewayError as err:
                error = {"error": error_of(err.status, err.body())}
                continue
            if response.status < 400 or (last and not worth_reading(response.status)):
                self.names[index] = model
                return response
            try:
                body = await read_all(response, 64 * 1024)
            finally:
                response.close()
            error = {"error": error_of(response.status, body)}
            if not fallback_reason(response.status, body):
                break
        return error

    async def pump(self, index: int) -> None:
        answer = await self.answer(index)
        if isinstance(answer, dict):
            await self.queue.put((index, answer))
            await self.queue.put((index, None))
            return
        response = answer
        try:
            if response.status >= 400:
                body = await read_all(response, 64 * 1024)
                await self.queue.put((index, {"error": error_of(response.status, body)}))
                return
            decoder = SSEDecoder()
            async for chunk in response.content.iter_any():
                for _, data in decoder.feed(chunk):
                    event = loads_object(data)
                    if event is not None:
                        await self.queue.put((index, event))
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = {"message": f"the stream broke: {type(exc).__name__}", "code": "stream_broken"}
            await self.queue.put((index, {"error": error}))
        except EventTooLarge as exc:
            await self.queue.put((index, {"error": {"message": str(exc), "code": "stream_broken"}}))
        finally:
            response.close()
            if not self.closed:
                await self.queue.put((index, None))

    def chunk(self, index: int, event: JSON) -> bytes:
        choices = [{**c, "index": index} for c in event.get("choices") or () if isinstance(c, dict)]
        payload = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.names[index],
            "choices": choices,
        }
        return encode_event(payload)

    async def events(self) -> AsyncIterator[bytes]:
        self.tasks = [asyncio.create_task(self.pump(i)) for i in range(len(self.chains))]
        usage: JSON | None = None
        try:
            running = len(self.tasks)
            while running:
                index, event = await self.queue.get()
                if event is None:
                    running -= 1
                elif isinstance(event.get("error"), dict):
                    choice = {"delta": {}, "finish_reason": "error", "error": event["error"]}
                    yield self.chunk(index, {"choices": [choice]})
                else:
                    usage = add_usage(usage, event.get("usage"))
                    if event.get("choices"):
                        yield self.chunk(index, event)
            if self.include_usage and usage is not None:
                payload = {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": ",".join(self.names),
                    "choices": [],
                    "usage": usage,
                }
                yield encode_event(payload)
            yield DONE
        finally:
            self.close()

    def release(self) -> None:
        self.close()

    def close(self) -> None:
        self.closed = True
        for task in self.tasks:
            task.cancel()
