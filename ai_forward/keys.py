"""Client keys: find the one a request presents, and swap forward keys for real ones.

A request presents its key as ``Authorization: Bearer``, ``api-key`` or
``x-api-key``. A forward key is replaced by the route's next real key in the
same header; any other key is relayed unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .types import Headers

if TYPE_CHECKING:
    from .exchange import Exchange

KEY_HEADERS = (b"authorization", b"api-key", b"x-api-key")


@dataclass(frozen=True, slots=True)
class PresentedKey:
    """The key a client sent and the header it came in."""

    header: bytes
    value: str

    @property
    def fingerprint(self) -> str:
        """A short, stable, non-reversible name for the key (for counters and logs)."""
        return key_fingerprint(self.value)


def key_fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def find_key(headers: Headers) -> PresentedKey | None:
    """The first key in the request headers, in KEY_HEADERS order of precedence."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in KEY_HEADERS and name not in found:
            found[name] = value
    for name in KEY_HEADERS:
        raw = found.get(name)
        if raw is None:
            continue
        text = raw.decode("latin-1").strip()
        if name == b"authorization":
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer":
                continue
            text = token.strip()
        if text:
            return PresentedKey(name, text)
    return None


class KeySet:
    """A set of secret keys, checked by hash lookup and a constant-time compare."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._by_hash = {hashlib.sha256(k.encode()).digest(): k.encode() for k in keys}

    def __bool__(self) -> bool:
        return bool(self._by_hash)

    def __contains__(self, key: str) -> bool:
        encoded = key.encode()
        stored = self._by_hash.get(hashlib.sha256(encoded).digest(), b"\0")
        return hmac.compare_digest(stored, encoded)


class KeyRing:
    """The real keys of one route, handed out round-robin, skipping keys cooling down.

    A key cools down (see `cool`) after the upstream refused it; it is skipped
    while other keys remain, and handed out again once its time is up.
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = tuple(keys)
        self._next = 0
        self._cool_until: dict[str, float] = {}
        self._strikes: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self.keys)

    def next(self) -> str:
        """The next key in turn that is not cooling down (the next in turn if all are)."""
        return self.next_except(()) or self._take(self._next)

    def next_except(self, tried: Collection[str]) -> str | None:
        """The next key in turn that is neither in `tried` nor cooling down, or None."""
        now = time.monotonic()
        count = len(self.keys)
        for step in range(count):
            position = (self._next + step) % count
            key = self.keys[position]
            if key not in tried and self._cool_until.get(key, 0.0) <= now:
                return self._take(position)
        return None

    def _take(self, position: int) -> str:
        self._next = (position + 1) % len(self.keys)
        return self.keys[position]

    def cool(self, key: str, seconds: float) -> None:
        """Skip `key` for `seconds` while other keys remain."""
        if key in self.keys and seconds > 0:
            self._cool_until[key] = time.monotonic() + seconds
            self._strikes.pop(key, None)

    def cooling(self, key: str) -> bool:
        return self._cool_until.get(key, 0.0) > time.monotonic()

    def strike(self, key: str) -> int:
        """Count one more refusal in a row for `key`; returns the count."""
        if key not in self.keys:
            return 0
        self._strikes[key] = self._strikes.get(key, 0) + 1
        return self._strikes[key]

    def clear(self, key: str) -> None:
        """`key` worked: forget its refusals in a row."""
        if self._strikes:
            self._strikes.pop(key, None)


def key_header(header: bytes, key: str) -> tuple[bytes, bytes]:
    """The header that carries `key` in the style the client used."""
    if header == b"authorization":
        return header, b"Bearer " + key.encode()
    return header, key.encode()


def without_keys(headers: Headers) -> Headers:
    return [(n, v) for n, v in headers if n not in KEY_HEADERS]


class KeyHook:
    """Decides whose key goes upstream: a real key for forward keys, else the client's."""

    def __init__(self, forward_keys: Iterable[str], rings: dict[str, KeyRing]) -> None:
        self.forward_keys = KeySet(forward_keys)
        self.rings = rings

    async def before(self, ex: Exchange) -> None:
        key = find_key(ex.headers)
        ex.key = key
        ring = self.rings.get(ex.route.prefix)
        if key is not None and key.value in self.forward_keys:
            ex.key_kind = "forward"
            ex.real_key = ring.next() if ring else None
        elif key is not None:
            ex.key_kind = "relay"
        elif ring and not self.forward_keys:
            ex.key_kind = "open"
            ex.real_key = ring.next()

    async def after(self, ex: Exchange) -> None:
        return None
