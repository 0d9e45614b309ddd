"""Every error a client can see, rendered in OpenAI's shape.

    GatewayError                      (status, type, code)
    ├── InvalidRequest                400 invalid_request_error
    │   └── UnsupportedFeature        400 invalid_request_error / unsupported
    ├── Unauthorized                  401 authentication_error
    ├── Forbidden                     403 permission_error
    ├── RouteNotFound                 404 invalid_request_error / route_not_found
    ├── NotFound                      404 invalid_request_error / not_found
    ├── MethodNotAllowed              405 invalid_request_error / method_not_allowed
    ├── RequestTimeout                408 invalid_request_error / request_timeout
    ├── Conflict                      409 invalid_request_error / conflict
    ├── BodyTooLarge                  413 invalid_request_error / body_too_large
    ├── InvalidField                  422 invalid_request_error / invalid_value (param)
    ├── RateLimited                   429 rate_limit_exceeded
    ├── UpstreamUnreachable           502 upstream_error / upstream_unreachable
    ├── ServiceUnavailable            503 server_error
    └── UpstreamTimeout               504 upstream_error / upstream_timeout

The body is always ``{"error": {"message", "type", "param", "code"}}`` so the
official SDKs raise the matching exception class.
"""

from __future__ import annotations

import orjson


class GatewayError(Exception):
    """Base of every error answered by the gateway itself."""

    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> bytes:
        return error_body(self.message, self.type, self.code, self.param)

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        body = self.body()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        headers.extend((k.lower().encode(), v.encode()) for k, v in self.headers.items())
        return headers


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class UnsupportedFeature(InvalidRequest):
    code = "unsupported"


class Unauthorized(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(GatewayError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class RouteNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "route_not_found"


class BodyTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "body_too_large"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class RequestTimeout(GatewayError):
    """The client did not send its request in time."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class InvalidField(GatewayError):
    """A request field is missing or malformed; `param` names it."""

    status = 422
    type = "invalid_request_error"
    code = "invalid_value"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_exceeded"
    code = "rate_limit_exceeded"


class UpstreamUnreachable(GatewayError):
    status = 502
    type = "upstream_error"
    code = "upstream_unreachable"


class ServiceUnavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "upstream_error"
    code = "upstream_timeout"
