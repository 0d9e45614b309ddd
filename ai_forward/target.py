"""The request target: checked once, kept as sent for the upstream, canonical for matching.

A target the gateway forwards is origin-form (`/path`), or absolute-form
(`http://any.host/path`, as HTTP-proxy clients send it), whose scheme and host
are dropped: the upstream's origin only ever comes from the settings. Anything
else (`*`, `host:port`, `@host`, a NUL, a raw backslash, a dot segment even
percent-encoded) is refused with a 400 before any upstream is chosen.

Two forms of the path come out of it. `raw` is what goes upstream: the
client's bytes with their percent-encoding intact, only runs of `/` collapsed
to one. `path` is what every rule matches on (routes, per-path limits, model
and route allowlists, provider paths): `raw` percent-decoded. Both have the
same segments, so `//v1/chat/completions` and `/v1//chat/completions` are
`/v1/chat/completions` for a limit as well as upstream.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote

from .errors import InvalidRequest, MethodNotAllowed

# RFC 3986 path characters: unreserved, sub-delims, ':', '@', '/', and '%' for escapes.
_PATH = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ABSOLUTE = re.compile(r"https?://[^/]*", re.IGNORECASE)
_DOTS = (".", "..")
_SEPARATORS = re.compile(r"[/\\]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RequestTarget(NamedTuple):
    """One request's path: `raw` to send upstream, `path` to match on, segment by segment."""

    raw: str
    path: str
    raw_segments: tuple[str, ...]
    segments: tuple[str, ...]


def parse_target(method: str, raw_path: bytes) -> RequestTarget:
    """The request target of `method raw_path`; raises a GatewayError (400, 405) if refused."""
    if method == "CONNECT":
        raise MethodNotAllowed(
            "CONNECT is not supported: this gateway is not a tunnelling proxy; send the API "
            "request itself (POST /v1/...) to it",
            headers={"allow": "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"},
        )
    text = raw_path.decode("latin-1")
    if not text.startswith("/"):
        absolute = _ABSOLUTE.match(text)
        if absolute is None:
            raise bad_target(text, "a request target must be a path starting with '/'")
        text = text[absolute.end() :] or "/"  # forward-proxy form: the host is ignored
    raw = check_path(text)
    raw_segments = tuple(_collapse(raw[1:].split("/")) if "//" in raw else raw[1:].split("/"))
    segments = raw_segments
    if "%" in raw:
        segments = tuple(unquote(s, errors="replace") for s in raw_segments)
        if any(_CONTROL.search(s) for s in segments):
            raise bad_target(text, "a path must not hold a NUL or control character (%00-%1F, %7F)")
    if "//" in raw:
        raw = "/" + "/".join(raw_segments)
    path = raw if segments is raw_segments else "/" + "/".join(segments)
    return RequestTarget(raw, path, raw_segments, segments)


def check_path(path: str) -> str:
    """`path` if it is a plain origin-form path (no query, fragment or stray bytes)."""
    if _PATH.fullmatch(path) is None:
        raise bad_target(
            path,
            "a path may hold only letters, digits, - . _ ~ ! $ & ' ( ) * + , ; = : @ / and "
            "%XX escapes; percent-encode anything else",
        )
    if "%" in path and _BAD_ESCAPE.search(path) is not None:
        raise bad_target(path, "'%' in a path must start an escape such as %25 or %2F")
    decoded = unquote(path, "latin-1") if "%" in path else path
    # Checked decoded, and split at '\\' too: some upstreams resolve %2e%2e or ..%2F.
    if "." in decoded and any(part in _DOTS for part in _SEPARATORS.split(decoded)):
        raise bad_target(path, "a path must not hold '.' or '..' segments, even percent-encoded")
    return path


def _collapse(segments: list[str]) -> list[str]:
    """Drop empty segments, except a last one (a trailing slash)."""
    return [s for s in segments[:-1] if s] + segments[-1:]


def bad_target(target: str, why: str) -> InvalidRequest:
    shown = target if len(target) <= 200 else target[:200] + "..."
    return InvalidRequest(f"request target {shown!r} refused: {why}", code="invalid_target")
