"""CORS as pure ASGI: requests without an Origin header pass straight through."""

from __future__ import annotations

from collections.abc import Iterable

from .types import ASGIApp, Headers, Message, Receive, Scope, Send

_ALLOW_METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"


class CORS:
    """Answers preflight requests locally and marks replies to allowed origins."""

    def __init__(self, app: ASGIApp, origins: Iterable[str], max_age: int = 600) -> None:
        self.app = app
        allowed = tuple(origins)
        self.any_origin = "*" in allowed
        self.origins = frozenset(o.encode() for o in allowed)
        self.max_age = str(max_age).encode()

    def allow(self, origin: bytes) -> bytes | None:
        if self.any_origin:
            return b"*"
        return origin if origin in self.origins else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = request_headers = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-headers":
                request_headers = value
        if origin is None:
            await self.app(scope, receive, send)
            return
        allowed = self.allow(origin)
        if scope["method"] == "OPTIONS" and _is_preflight(scope["headers"]):
            await self.preflight(send, allowed, request_headers)
            return
        if allowed is None:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: Headers = list(message.get("headers", []))
                headers.append((b"access-control-allow-origin", allowed))
                headers.append((b"access-control-expose-headers", b"*"))
                if allowed != b"*":
                    headers.append((b"vary", b"Origin"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def preflight(self, send: Send, allowed: bytes | None, asked: bytes | None) -> None:
        if allowed is None:
            body = b"origin not allowed by CORS_ORIGINS"
            headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        headers = [
            (b"access-control-allow-origin", allowed),
            (b"access-control-allow-methods", _ALLOW_METHODS),
            (b"access-control-allow-headers", asked or b"*"),
            (b"access-control-max-age", self.max_age),
            (b"content-length", b"0"),
        ]
        if allowed != b"*":
            headers.append((b"vary", b"Origin"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _is_preflight(headers: Headers) -> bool:
    return any(name == b"access-control-request-method" for name, _ in headers)
