"""Keeps every configured real key out of what clients and logs see.

One `Redactor` is built at start-up from all the real keys in the settings.
`Upstream` puts every answer through it (headers and body, streamed or not)
before anyone reads it, and the chat-log writer passes every line through it.

A key is replaced by a mask of the same length (`[REDACTED****]`), so a
`Content-Length` stays right and JSON stays valid. A key may arrive split
across two body chunks: a chunk's tail that could be the start of a key is
held back until the next chunk shows whether it is one. Only such a tail is
held (usually nothing), so a stream's events are never delayed by it.

Keys shorter than MIN_KEY characters are not looked for: they would match
ordinary text, and no provider issues keys that short.
"""

from __future__ import annotations

import operator
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import Settings
    from .upstream import BodyStream, UpstreamResponse

MIN_KEY = 8
# A held-back tail is found by these leading bytes of a key; shorter tails by `endswith`.
PROBE = 4
MASK = b"[REDACTED]"


_value = operator.itemgetter(1)


def mask(size: int) -> bytes:
    """What stands in for a key of `size` bytes: the same length, nothing of the key."""
    if size < len(MASK):
        return b"*" * size
    return MASK[:-1] + b"*" * (size - len(MASK)) + b"]"


class Redactor:
    """Finds and masks a fixed set of secrets in bytes, headers, text and streams."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._build({s.encode() for s in secrets if len(s) >= MIN_KEY})

    def add(self, secrets: Iterable[str]) -> None:
        """Look for `secrets` too from now on (keys the admin adds at run time)."""
        new = {s.encode() for s in secrets if len(s) >= MIN_KEY} - set(self.keys)
        if new:
            self._build(set(self.keys) | new)

    def _build(self, secrets: set[bytes]) -> None:
        keys = sorted(secrets, key=len, reverse=True)
        self.keys: tuple[bytes, ...] = tuple(keys)
        self._masks = {key: mask(len(key)) for key in keys}
        # Longest first, so that a key containing another is masked whole.
        self._pattern = re.compile(b"|".join(re.escape(key) for key in keys) or b"(?!)")
        probes: dict[bytes, list[bytes]] = {}
        for key in keys:
            probes.setdefault(key[:PROBE], []).append(key)
        self._probes = tuple((probe, tuple(group)) for probe, group in probes.items())
        self.shorts = tuple({key[:size] for key in keys for size in range(1, PROBE)})
        self.probes = tuple(probe for probe, _ in self._probes)
        self._window = max((len(key) for key in keys), default=1) - 1

    def __bool__(self) -> bool:
        return bool(self.keys)

    def __repr__(self) -> str:
        return f"Redactor({len(self.keys)} keys)"

    @classmethod
    def for_settings(cls, settings: Settings) -> Redactor:
        return cls(real_keys(settings))

    def redact(self, data: bytes) -> bytes:
        """`data` with every key masked."""
        # One search per distinct leading part (keys of one provider share it); the
        # pattern runs only when one is found.
        for probe, _ in self._probes:
            if data.find(probe) != -1:  # (`in` costs more: it tries an int first)
                return self._pattern.sub(self._mask, data)
        return data

    def redact_text(self, text: str) -> str:
        if not self.keys:
            return text
        return self.redact(text.encode("utf-8", "surrogateescape")).decode(
            "utf-8", "surrogateescape"
        )

    def headers(self, headers: Sequence[tuple[bytes, bytes]]) -> Sequence[tuple[bytes, bytes]]:
        """`headers` with every key masked in their values (the same list if none holds one)."""
        values = b"\n".join(map(_value, headers))
        for probe in self.probes:
            if probe in values:
                return [(name, self.redact(value)) for name, value in headers]
        return headers

    async def stream(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """The chunks with every key masked, even one split across chunks."""
        mask = StreamMask(self)
        async for chunk in chunks:
            data = mask.push(chunk)
            if data:
                yield data
        if mask.pending:
            yield mask.pending

    def held_from(self, data: bytes) -> int:
        """Where the tail of `data` that could begin a key starts (len(data): no such tail)."""
        size = len(data)
        best = size
        start = max(0, size - self._window)
        for probe, group in self._probes:
            i = data.find(probe, start)
            while i != -1 and i < best:
                rest = data[i:]
                if any(key.startswith(rest) for key in group):
                    best = i
                    break
                i = data.find(probe, i + 1)
        if best == size and self.shorts and data.endswith(self.shorts):
            for length in range(min(PROBE - 1, size), 0, -1):
                if data[size - length :] in self.shorts:
                    return size - length
        return best

    def _mask(self, match: re.Match[bytes]) -> bytes:
        return self._masks[match.group()]


class StreamMask:
    """Masks keys in a body chunk by chunk, holding back a tail that could begin a key
    until the next chunk (or the end: `pending`) tells."""

    __slots__ = ("pending", "redactor")

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self.pending = b""

    def push(self, chunk: bytes) -> bytes:
        """What of the body so far can go out, masked (b"" if all of it is held back)."""
        redactor = self.redactor
        data = self.pending + chunk if self.pending else chunk
        # The usual chunk: no key's leading bytes anywhere, nor a short start of one at
        # its end; it goes out whole, as it is.
        for probe in redactor.probes:
            if data.find(probe) != -1:  # (`in` costs more: it tries an int first)
                break
        else:
            if not data.endswith(redactor.shorts):
                self.pending = b""
                return data
        data = redactor.redact(data)
        cut = redactor.held_from(data)
        self.pending = data[cut:]
        return data[:cut]


class RedactedResponse:
    """An upstream answer whose headers and body pass through a Redactor."""

    __slots__ = ("_origin", "content", "raw_headers", "status")

    def __init__(self, origin: UpstreamResponse, redactor: Redactor) -> None:
        self._origin = origin
        self.status = origin.status
        self.raw_headers = redactor.headers(origin.raw_headers)
        self.content = RedactedBody(origin.content, redactor)

    @property
    def headers(self) -> Mapping[str, str]:
        """For lookups only (content type, retry-after); what is relayed is raw_headers."""
        return self._origin.headers

    def release(self) -> Any:
        return self._origin.release()

    def close(self) -> None:
        self._origin.close()


class RedactedBody:
    """The body of a RedactedResponse. Whoever reads it through `iter_any` gets it masked;
    the relay reads `origin` itself and masks each chunk with a `StreamMask` in the same
    loop (one async layer fewer per chunk)."""

    __slots__ = ("origin", "redactor")

    def __init__(self, origin: BodyStream, redactor: Redactor) -> None:
        self.origin = origin
        self.redactor = redactor

    def iter_any(self) -> AsyncIterable[bytes]:
        return self.redactor.stream(self.origin.iter_any())


def real_keys(settings: Settings) -> list[str]:
    """Every upstream key the settings hold: routes, providers, Azure resources, hosts."""
    providers = settings.providers
    keys = [key for route in settings.routes for key in route.keys]
    keys += providers.anthropic_keys + providers.gemini_keys
    keys += [key for resource in providers.azure for key in resource.keys]
    keys += [key for host in providers.hosts for key in host.keys]
    return keys
