"""ai-proxy-cloudflare's admin URLs, `/<TOKEN>/register/<user>` and the like, served as
aliases of the `/admin` API: never forwarded, and the token leaves the path at once (the
admin API reads it from the Authorization header it is moved to, and compares it in
constant time)."""

from __future__ import annotations

import re

import orjson

from ..pipeline import NOTHING, Contribution, Shared
from ..settings import Settings
from ..types import Scope

# /<token>/register/<user>, /<token>/reset/<user>, /<token>/delete/<user>, /<token>/addkey/...
_ADMIN_PATH = re.compile(r"^/([^/]+)/(register|reset|delete|addkey)(?:/([^/]*))?(/.*)?$")


def admin_alias(scope: Scope) -> tuple[Scope, bytes | None] | None:
    """The `/admin` request an ai-proxy-cloudflare admin URL stands for (and the body it
    carries), or None for any other path."""
    match = _ADMIN_PATH.match(scope["path"])
    if match is None:
        return None
    token, action, user, rest = match.groups()
    body: bytes | None = None
    if action == "register":
        path, method, body = "/admin/users", "POST", orjson.dumps({"name": user or ""})
    elif action == "reset":
        path, method = f"/admin/users/{user}/reset", "POST"
    elif action == "delete":
        path, method = f"/admin/users/{user}", "DELETE"
    else:  # /<token>/addkey/<host>/<key>
        key = (rest or "/")[1:]
        path, method = "/admin/hosts", scope["method"]
        if method == "POST":
            body = orjson.dumps({"host": user or "", "keys": [key]})
    headers = [
        (k, v) for k, v in scope["headers"] if k not in (b"authorization", b"content-length")
    ]
    headers.append((b"authorization", b"Bearer " + token.encode("latin-1")))
    if body is not None:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    rewritten = {
        **scope,
        "path": path,
        "raw_path": path.encode(),
        "method": method,
        "headers": headers,
        "query_string": b"",
    }
    return rewritten, body


def install(settings: Settings, shared: Shared) -> Contribution:
    if not settings.users.admin_token:
        return NOTHING  # no admin API: such a path is an ordinary one, forwarded
    return Contribution(aliases=(admin_alias,))
