"""Fault injection for the fake upstream: handlers that fail, stall, close or cut on cue."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiohttp import web

from tests.fakes import (
    Handler,
    Recorded,
    chunk,
    default_handler,
    json_response,
    sse,
    stream_response,
)

# Long enough that only the proxy's timeouts end a stall; short enough that a stuck
# handler never holds up the fake upstream's shutdown for long.
STALL = 8.0


def upstream_error(status: int) -> dict[str, object]:
    return {"error": {"message": f"upstream says {status}", "type": "server_error", "code": None}}


def failing(
    times: int,
    status: int,
    headers: Mapping[str, str] | None = None,
    then: Handler = default_handler,
) -> Handler:
    """Answer `status` to the first `times` requests (forever if times < 0), then `then`."""
    seen = 0

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        nonlocal seen
        seen += 1
        if times < 0 or seen <= times:
            return await json_response(upstream_error(status), status=status, headers=headers)
        return await then(request, rec)

    return handler


def closing(times: int, then: Handler = default_handler) -> Handler:
    """Drop the connection without an answer for the first `times` requests."""
    seen = 0

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        nonlocal seen
        seen += 1
        if seen <= times:
            assert request.transport is not None
            request.transport.close()
            await asyncio.sleep(STALL)
        return await then(request, rec)

    return handler


def stalling(times: int, then: Handler = default_handler) -> Handler:
    """Send nothing at all (not even headers) to the first `times` requests (all if < 0)."""
    seen = 0

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        nonlocal seen
        seen += 1
        if times < 0 or seen <= times:
            await asyncio.sleep(STALL)
        return await then(request, rec)

    return handler


def stalling_mid_stream(events_first: int = 2) -> Handler:
    """Stream `events_first` chunks, then go silent with the connection open."""

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for i in range(events_first):
            await response.write(sse(chunk(f"part{i} "))[0])
        await asyncio.sleep(STALL)
        return response

    return handler


def slow_stream(events: int, delay: float) -> Handler:
    """A healthy stream of `events` chunks, one every `delay` seconds."""

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        payloads = [chunk(f"w{i} ") for i in range(events)]
        return await stream_response(request, sse(*payloads), delay=delay)

    return handler


def by_key(statuses: Mapping[str, int], headers: Mapping[str, str] | None = None) -> Handler:
    """Answer the status mapped to the request's bearer key; other keys are served normally."""

    async def handler(request: web.Request, rec: Recorded) -> web.StreamResponse:
        key = rec.headers.get("authorization", "").removeprefix("Bearer ")
        status = statuses.get(key)
        if status is not None:
            return await json_response(upstream_error(status), status=status, headers=headers)
        return await default_handler(request, rec)

    return handler
