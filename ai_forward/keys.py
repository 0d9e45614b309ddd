"""Keys: the one a request presents, the kinds of client key, and rings of real keys.

A request presents its key as ``Authorization: Bearer``, ``api-key`` or
``x-api-key``. Which real key goes upstream instead is decided by `keyhook.py`
(and by features that issue keys); a `Credential` holds it for one exchange.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum

from .errors import Unauthorized
from .types import Headers

KEY_HEADERS = (b"authorization", b"api-key", b"x-api-key")


class KeyKind(StrEnum):
    """What the client's key is to the gateway (the access log prints the value)."""

    NONE = "none"  # no key presented, and none supplied for it
    FORWARD = "forward"  # a FORWARD_KEY: swapped for a real key
    RELAY = "relay"  # any other key: relayed unchanged
    OPEN = "open"  # no key, open access: a real key supplied
    USER = "user"  # an issued user key: swapped for a real key

    @property
    def ours(self) -> bool:
        """Whether the key sent upstream is the gateway's to choose, never the client's."""
        return self in (KeyKind.FORWARD, KeyKind.OPEN, KeyKind.USER)


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
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                # The header that takes precedence, in the usual form: nothing else to look at.
                token = value[7:].decode("latin-1").strip()
                if token:
                    return PresentedKey(name, token)
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
    """A set of secret keys, checked by hash lookup and a constant-time compare.

    The lookup uses Python's own string hash: SipHash under a random per-process key, so
    its timing tells nothing about how close a guess is, as a SHA-256 would (which costs
    ten times more on every request). The final compare is constant-time.
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = {k: k.encode() for k in keys}

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __contains__(self, key: str) -> bool:
        stored = self._keys.get(key)
        return hmac.compare_digest(stored if stored is not None else b"\0", key.encode())


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
        cooling = self._cool_until
        if cooling:
            now = time.monotonic()
            if any(until > now for until in cooling.values()):
                return self.next_except(()) or self._take(self._next)
            cooling.clear()  # all cooled down: back to plain turns
        return self._take(self._next)

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


class Credential:
    """The real key one exchange sends upstream, and the ring it was drawn from.

    Drawn once per exchange (`draw`); after that only the retry's key rotation
    (`resilience/rotation.py`) moves it to another key of the same ring, and the
    fallback walk (`fallbacks/walk.py`) draws it anew for another model.
    """

    __slots__ = ("key", "ring")

    def __init__(self, ring: KeyRing, key: str) -> None:
        self.ring = ring
        self.key = key

    @classmethod
    def draw(cls, ring: KeyRing | None) -> Credential | None:
        """The ring's next key, or None for no ring or an empty one."""
        return cls(ring, ring.next()) if ring else None


def key_header(header: bytes, key: str) -> tuple[bytes, bytes]:
    """The header that carries `key` in the style the client used."""
    if header == b"authorization":
        return header, b"Bearer " + key.encode()
    return header, key.encode()


def without_keys(headers: Headers) -> Headers:
    return [(n, v) for n, v in headers if n not in KEY_HEADERS]


class AdminToken:
    """ADMIN_TOKEN, kept only as a hash; every admin surface checks it here, in constant time."""

    def __init__(self, token: str) -> None:
        self._digest = hashlib.sha256(token.encode()).digest()

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), self._digest)

    def check(self, headers: Headers) -> None:
        """Raise Unauthorized unless `headers` carry `Authorization: Bearer <ADMIN_TOKEN>`."""
        key = find_key(headers)
        matches = self.matches(key.value if key else "")
        if key is None or key.header != b"authorization":
            raise Unauthorized("the admin API needs `Authorization: Bearer <ADMIN_TOKEN>`")
        if not matches:
            raise Unauthorized("wrong admin token: send `Authorization: Bearer <ADMIN_TOKEN>`")
