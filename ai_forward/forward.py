"""The request path, top to bottom: match route → read body → hooks → upstream → relay.

A hook may answer in place of the upstream (`ex.answer`): nothing is then planned or
called upstream, and the answer goes out at once (see `local_answer.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from urllib.parse import quote

import aiohttp
from loguru import logger

from .accesslog import AccessLog
from .bodyreader import BodyReader, ClientDisconnected, too_large
from .errors import GatewayError, RouteNotFound, ServiceUnavailable
from .exchange import BeforeOnly, Exchange, Hook
from .local_answer import answer_locally
from .observe.usage import observer_of, record
from .pipeline import Planner, Reporter, Retrier
from .plan import downstream_headers, plan_passthrough, with_hook_headers
from .requestwatch import REQUEST_ID, DisconnectWatch, RequestIds
from .routing import RouteTable
from .sse import DONE, EventTooLarge, encode_event
from .target import parse_target
from .types import Headers, Message, Receive, Scope, Send
from .upstream import Upstream, UpstreamResponse

_PATH_SAFE = "/:@!$&'()*+,;=~"


class Forwarder:
    """The ASGI app that forwards every request under a route prefix."""

    def __init__(
        self,
        table: RouteTable,
        hooks: Sequence[Hook],
        upstream: Callable[[], Upstream],
        *,
        max_body_size: int,
        body_timeout: float,
        access_log: AccessLog | None = None,
        planner: Planner | None = None,
        retrier: Retrier | None = None,
        reporters: Sequence[Reporter] = (),
    ) -> None:
        self.table = table
        self.hooks = tuple(hooks)
        self.upstream = upstream
        self.max_body_size = max_body_size
        self.bodies = BodyReader(max_body_size, body_timeout)
        self.access_log = access_log
        self.planner: Planner = planner or plan_passthrough
        self.retrier = retrier
        self.reporters = tuple(reporters)
        self.new_request_id = RequestIds()

    @property
    def hooks(self) -> tuple[Hook, ...]:
        return self._hooks

    @hooks.setter
    def hooks(self, hooks: tuple[Hook, ...]) -> None:
        self._hooks = hooks
        # Each hook, and whether its `after` is to be called (not for a BeforeOnly).
        self._steps = tuple((hook, not isinstance(hook, BeforeOnly)) for hook in hooks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            ex = await self.accept(scope, receive)
        except GatewayError as err:
            await send_error(send, err, [(REQUEST_ID, self.new_request_id().encode())])
            for reporter in self.reporters:
                reporter.refused(err)
            return
        except ClientDisconnected:
            return
        for reporter in self.reporters:
            reporter.started(ex)
        passed: list[Hook] = []
        try:
            for hook, has_after in self._steps:
                await hook.before(ex)
                if has_after:
                    passed.append(hook)
            if ex.answer is None:
                await self.exchange(ex, receive, send)
            else:
                await answer_locally(ex, ex.answer, send)
        except GatewayError as err:
            ex.outcome.status = err.status
            ex.outcome.error = err.message
            if not ex.response_started:
                ex.outcome.refusal = err
                await send_error(send, err, with_request_id(ex))
        except Exception as exc:
            # A fault of the gateway's own: still an error in OpenAI's shape, never plain text.
            # The traceback is logged without locals (they may hold keys).
            trace = "".join(traceback.format_exception(exc))
            logger.error("route {}: unexpected {}\n{}", ex.route.name, type(exc).__name__, trace)
            failed = GatewayError(
                f"the gateway failed on this request ({type(exc).__name__}); this is its fault, "
                "not yours: retry, and tell its operator if it goes on"
            )
            ex.outcome.error = failed.message
            if not ex.response_started:
                ex.outcome.status = failed.status
                await send_error(send, failed, with_request_id(ex))
            else:
                with contextlib.suppress(OSError, RuntimeError):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            ex.outcome.ended = time.monotonic()
            for hook in reversed(passed):
                try:
                    await hook.after(ex)
                except Exception:
                    logger.exception("after-hook {} failed", type(hook).__name__)
            if self.access_log is not None:
                self.access_log.exchange(ex)
            for reporter in self.reporters:
                reporter.finished(ex)

    async def accept(self, scope: Scope, receive: Receive) -> Exchange:
        # raw_path is optional in ASGI; without it, the decoded path re-encoded is the best left.
        raw_path: bytes = scope.get("raw_path") or quote(scope["path"], _PATH_SAFE).encode()
        target = parse_target(scope["method"], raw_path)
        matched = self.table.match(target)
        if matched is None:
            raise RouteNotFound(
                f"no route serves {target.path!r}; configured prefixes: "
                + ", ".join(r.prefix for r in self.table.routes)
            )
        headers: Headers = scope["headers"]
        for name, value in headers:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_size:
                raise too_large(self.max_body_size)
        body = await self.bodies.read(receive)
        client = scope.get("client")
        return Exchange(
            scope=scope,
            route=matched.route,
            method=scope["method"],
            path=target.path,
            upstream_path=matched.path,
            raw_upstream_path=matched.raw,
            query=scope.get("query_string", b""),
            headers=headers,
            body=body,
            client_ip=client[0] if client else "",
            request_id=self.new_request_id(),
        )

    async def exchange(self, ex: Exchange, receive: Receive, send: Send) -> None:
        """Call upstream and relay its answer; a client disconnect cancels both."""
        task = asyncio.current_task()
        assert task is not None
        watch = DisconnectWatch(receive, task)
        try:
            await self.relay(ex, send)
        except asyncio.CancelledError:
            task.uncancel()
            if watch.gone:
                if not ex.outcome.complete:
                    ex.outcome.error = "client disconnected"
            else:
                # Nothing else cancels a request: the server's SHUTDOWN_GRACE ran out.
                ex.outcome.error = "cut short by shutdown"
                if not ex.response_started:
                    raise ServiceUnavailable("the gateway is shutting down; try again") from None
        finally:
            watch.stop()

    async def relay(self, ex: Exchange, send: Send) -> None:
        upstream = self.upstream()
        outcome = ex.outcome

        async def attempt() -> UpstreamResponse:
            request = self.planner(ex)
            sent = time.monotonic()
            try:
                return await upstream.send(request)
            finally:
                outcome.first_byte = waited = time.monotonic() - sent
                outcome.upstream_wait += waited

        response = await (self.retrier(ex, attempt) if self.retrier else attempt())
        ex.outcome.status = response.status
        completed = False
        observer = None
        try:
            response_headers = response.headers
            content_type = response_headers.get("content-type", "")
            observer = observer_of(ex, content_type)
            feed: Callable[[bytes], None] | None = observer.feed if observer is not None else None
            if ex.body_taps:
                feed = tapped(feed, ex.body_taps)
            stream: AsyncIterator[bytes] = upstream.body(response, feed)
            for body_filter in ex.body_filters:
                stream = body_filter(stream)
            keep_length = not ex.body_filters
            headers = with_hook_headers(downstream_headers(response.raw_headers, keep_length), ex)
            upstream_id = response_headers.get("x-request-id")
            if upstream_id:
                ex.request_id = upstream_id
            else:
                headers.append((REQUEST_ID, ex.request_id.encode()))
            outcome.relayed = time.monotonic()
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers}
            )
            ex.response_started = True
            last = b""
            try:
                async for chunk in stream:
                    if chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                        last = chunk
            except (TimeoutError, aiohttp.ClientError) as exc:
                ex.outcome.error = f"upstream stream broke: {type(exc).__name__}"
                logger.warning("route {}: {}", ex.route.name, ex.outcome.error)
                if content_type.startswith("text/event-stream"):
                    message = "the upstream connection broke before the reply was complete"
                    if isinstance(exc, TimeoutError):
                        message = f"the upstream stalled for {upstream.idle_timeout:g}s mid-reply"
                    await send(stream_error(message))
            except EventTooLarge as exc:
                # A stream reader (translation, observer, filter) met an event past its bound.
                ex.outcome.error = "upstream stream event too large"
                logger.warning("route {}: {}", ex.route.name, exc)
                if content_type.startswith("text/event-stream"):
                    await send(stream_error(str(exc)))
            except asyncio.CancelledError:
                if last.endswith(DONE):
                    # The client had the whole reply and hung up before the upstream's EOF
                    # (the SDKs do): that is a complete exchange, not a disconnect.
                    ex.outcome.complete = True
                    raise
                # A gone client ignores these sends; a server past its SHUTDOWN_GRACE delivers them.
                if content_type.startswith("text/event-stream"):
                    await send(stream_error("the gateway is shutting down; reply incomplete"))
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                raise
            else:
                completed = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            ex.outcome.complete = completed
        finally:
            if observer is not None:
                record(ex.outcome, observer)
            if completed:
                response.release()
            else:
                response.close()


def tapped(
    feed: Callable[[bytes], None] | None, taps: Sequence[Callable[[bytes], None]]
) -> Callable[[bytes], None]:
    """One feed for the observer (if any) and every tap."""
    every = ([feed] if feed is not None else []) + list(taps)
    if len(every) == 1:
        return every[0]

    def feed_all(chunk: bytes) -> None:
        for one in every:
            one(chunk)

    return feed_all


def stream_error(message: str) -> Message:
    """The last SSE event of a stream that could not be completed."""
    error = {"message": message, "type": "upstream_error", "code": "stream_broken"}
    return {"type": "http.response.body", "body": encode_event({"error": error}), "more_body": True}


async def send_error(send: Send, err: GatewayError, extra: Headers | None = None) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        await send(
            {
                "type": "http.response.start",
                "status": err.status,
                "headers": err.raw_headers() + (extra or []),
            }
        )
        await send({"type": "http.response.body", "body": err.body(), "more_body": False})


def with_request_id(ex: Exchange) -> Headers:
    """The headers of an answer the gateway gives itself: its own, and the request id."""
    return [*ex.response_headers, (REQUEST_ID, ex.request_id.encode())]
