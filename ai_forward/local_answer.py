"""Sending the answer a hook gave in place of the upstream's (`ex.answer`, a cache hit).

The forwarder calls `answer_locally` instead of planning and calling the upstream:
no planner, retrier, timers or upstream objects. The answer goes out as the relay
would send an upstream's: the hooks' response headers and the request id added,
body filters applied (the length then dropped), taps and observers fed, so every
`after` hook reads the outcome it would have read.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from .exchange import Exchange, LocalAnswer
from .observe.usage import observer_of, record
from .plan import with_hook_headers
from .requestwatch import REQUEST_ID
from .types import Headers, Send


async def answer_locally(ex: Exchange, answer: LocalAnswer, send: Send) -> None:
    """Send `answer` to the client and fill in `ex.outcome` as the relay would."""
    outcome = ex.outcome
    outcome.status = answer.status
    body = answer.body
    observer = observer_of(ex, answer.content_type)
    if observer is not None:
        observer.feed(body)
    for tap in ex.body_taps:
        tap(body)
    keep_length = not ex.body_filters
    headers, hooks = answer.headers, ex.response_headers
    if hooks and clash(headers, hooks):
        headers, hooks = with_hook_headers(headers, ex), []
    if not keep_length:
        headers = [h for h in headers if h[0] != b"content-length"]
    # A new list: the answer's own is shared by every request it answers.
    headers = [*headers, *hooks, (REQUEST_ID, ex.request_id.encode())]
    outcome.relayed = time.monotonic()
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    ex.response_started = True
    if not keep_length:
        stream = once(body)
        for body_filter in ex.body_filters:
            stream = body_filter(stream)
        async for chunk in stream:
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        body = b""
    await send({"type": "http.response.body", "body": body, "more_body": False})
    outcome.complete = True
    if observer is not None:
        record(outcome, observer)


def clash(headers: Headers, hooks: Headers) -> bool:
    """Whether a hook's header replaces one of the answer's own (rare: hooks name their own)."""
    for name, _ in hooks:
        for own, _ in headers:
            if own == name:
                return True
    return False


async def once(body: bytes) -> AsyncIterator[bytes]:
    yield body
