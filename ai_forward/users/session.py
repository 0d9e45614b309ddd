"""The admin's browser session: a signed cookie, and the CSRF token that goes with it.

Signing in at /admin/ui with ADMIN_TOKEN sets an HttpOnly, SameSite=Strict cookie that
holds an expiry and a random nonce, signed with a key derived from ADMIN_TOKEN; every
worker and instance with the same token accepts it, and changing the token signs every
session out. The page's calls to /admin send the cookie plus `X-CSRF-Token`, a second
signature of the cookie that the page carries and another site cannot read.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from ..keys import AdminToken
from ..types import Headers

COOKIE = "aifd_admin"
CSRF_HEADER = b"x-csrf-token"
SESSION_SECONDS = 12 * 3600


class AdminSessions:
    def __init__(self, token: str, lifetime: float = SESSION_SECONDS) -> None:
        self._key = hashlib.sha256(b"aifd admin session\x00" + token.encode()).digest()
        self.admin = AdminToken(token)
        self.lifetime = lifetime

    def token_matches(self, presented: str) -> bool:
        """Whether `presented` is ADMIN_TOKEN, compared in constant time."""
        return self.admin.matches(presented)

    def issue(self) -> str:
        payload = f"{int(time.time() + self.lifetime)}.{secrets.token_urlsafe(16)}"
        return f"{payload}.{self._sign('session', payload)}"

    def valid(self, value: str | None) -> bool:
        if not value or value.count(".") != 2:
            return False
        payload, _, signature = value.rpartition(".")
        if not hmac.compare_digest(signature, self._sign("session", payload)):
            return False
        expires = payload.partition(".")[0]
        return expires.isdigit() and int(expires) > time.time()

    def csrf(self, value: str) -> str:
        return self._sign("csrf", value)

    def authorizes(self, headers: Headers) -> bool:
        """A valid session cookie with its CSRF token in the header."""
        value = cookie(headers)
        if value is None or not self.valid(value):
            return False
        sent = next((v for k, v in headers if k == CSRF_HEADER), b"")
        return hmac.compare_digest(sent, self.csrf(value).encode())

    def _sign(self, purpose: str, payload: str) -> str:
        message = f"{purpose}:{payload}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


def cookie(headers: Headers) -> str | None:
    """The session cookie's value, if the request carries one."""
    for name, value in headers:
        if name != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            key, sep, found = part.strip().partition("=")
            if sep and key == COOKIE:
                return found
    return None


def set_cookie(value: str, *, secure: bool, max_age: int = SESSION_SECONDS) -> bytes:
    flags = f"{COOKIE}={value}; Path=/admin; Max-Age={max_age}; HttpOnly; SameSite=Strict"
    return (flags + ("; Secure" if secure else "")).encode()
