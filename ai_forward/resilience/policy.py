"""When a failed upstream attempt is tried again, after how long, and with which key.

Retried, whatever the method: connection errors, timeouts before the upstream's
first byte, and the statuses in RETRY_STATUSES unless the upstream answered
`x-should-retry: false`. Never any other 4xx — except that a 401 or 429 on a
real key from a KeyRing moves the retry to the ring's next key. This module is
the policy (no I/O); the loop that applies it is `retrier.Retrier`, the key
rotation `rotation.key_rotation`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from ..keys import KeyRing
from .settings import ResilienceSettings

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
KEY_STATUSES = frozenset({401, 429})
# A key cools down after this many 429s in a row: a single 429 is often just a burst.
STRIKES_TO_COOL = 2


class RetryPolicy:
    """The decisions of the retry loop, from RETRIES, RETRY_* and KEY_COOLDOWN."""

    def __init__(self, settings: ResilienceSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.retries = settings.retries
        self._rng = rng or random.Random()

    def retryable(self, status: int) -> bool:
        return status in RETRY_STATUSES

    def moves_key(self, status: int) -> bool:
        """Whether this status blames the key, so another key may do better."""
        return status in KEY_STATUSES

    def backoff(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(RETRY_BACKOFF_MAX, RETRY_BACKOFF * 2**retry)]."""
        ceiling = self.settings.retry_backoff * 2.0 ** min(retry, 32)
        return self._rng.uniform(0.0, min(self.settings.retry_backoff_max, ceiling))

    def wait_before(self, retry: int, headers: Mapping[str, str]) -> float | None:
        """Seconds to wait before retrying on the same key; None if the upstream asks for more
        than RETRY_AFTER_MAX (the client then gets the upstream's answer and its Retry-After)."""
        asked = retry_after(headers)
        if asked is None:
            return self.backoff(retry)
        return asked if asked <= self.settings.retry_after_max else None

    def account(self, ring: KeyRing, key: str, status: int) -> None:
        """Cool `key` down after a 401 or repeated 429s; a success clears its record."""
        if status == 401 or (status == 429 and ring.strike(key) >= STRIKES_TO_COOL):
            ring.cool(key, self.settings.key_cooldown)
        elif status < 400:
            ring.clear(key)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the upstream asks us to wait (`retry-after-ms` or `retry-after`), or None."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())
