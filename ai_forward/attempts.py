"""The retry loop around one upstream call (issue 5).

`Forwarder.relay` hands the retrier a zero-argument `attempt` that plans the
request from the exchange and sends it. Each retry calls it again, so a retry
on another key only changes `ex.real_key`: whoever plans the request (the
passthrough planner or a provider's) builds URL and headers for it. The loop
runs before anything is sent to the client, so a retry is always safe to make.

Which ring a real key came from: `ex.state[KEY_RING]` if a feature put its own
KeyRing there, else the ring of the route prefix (`gateway.rings`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from loguru import logger

from .auth import KeyRing
from .errors import UpstreamTimeout, UpstreamUnreachable
from .exchange import Exchange
from .upstream import UpstreamResponse

if TYPE_CHECKING:
    from .retry import RetryPolicy

Attempt = Callable[[], Awaitable[UpstreamResponse]]
KEY_RING = "resilience.ring"
ATTEMPTS_HEADER = b"x-aifd-attempts"
# The SDKs' own retry signal: honoured from the upstream, and sent once the gateway has
# retried, so that the client's retries do not multiply with the gateway's.
SHOULD_RETRY = "x-should-retry"
_NO_MORE_RETRIES = (SHOULD_RETRY.encode(), b"false")


class Retrier:
    """Calls `attempt` until it gives an answer worth relaying, or the retries run out."""

    def __init__(self, policy: RetryPolicy, rings: Mapping[str, KeyRing]) -> None:
        self.policy = policy
        self.rings = rings

    async def __call__(self, ex: Exchange, attempt: Attempt) -> UpstreamResponse:
        policy = self.policy
        tried: set[str] = set()
        for retry in range(policy.retries + 1):
            ex.outcome.attempts = retry + 1
            last = retry == policy.retries
            try:
                response = await attempt()
            except (UpstreamTimeout, UpstreamUnreachable) as err:
                if last:
                    self.finish(ex)
                    if retry:
                        err.message += f" (gave up after {retry + 1} attempts)"
                    raise
                reason = "timeout" if isinstance(err, UpstreamTimeout) else "unreachable"
                delay = policy.backoff(retry)
            else:
                # Planned anew each attempt: a planner may have picked the key (and its ring).
                ring = self.ring_of(ex)
                key = ex.real_key if ring is not None else None
                if ring is not None and key is not None:
                    policy.account(ring, key, response.status)
                wait = None if last else self.delay(ex, ring, key, tried, response, retry)
                if wait is None:
                    self.finish(ex)
                    return response
                delay = wait
                reason = str(response.status)
                response.close()
            ex.outcome.retried.append(reason)
            logger.info(
                "route {}: attempt {} failed ({}), retrying in {:.2f}s",
                ex.route.name,
                retry + 1,
                reason,
                delay,
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt always returns or raises")

    def ring_of(self, ex: Exchange) -> KeyRing | None:
        """The ring the exchange's real key came from, if any."""
        if ex.real_key is None:
            return None
        ring = ex.state.get(KEY_RING)
        if not isinstance(ring, KeyRing):
            ring = self.rings.get(ex.route.prefix)
        return ring if ring is not None and ex.real_key in ring.keys else None

    def delay(
        self,
        ex: Exchange,
        ring: KeyRing | None,
        key: str | None,
        tried: set[str],
        response: UpstreamResponse,
        retry: int,
    ) -> float | None:
        """Seconds until the next attempt, or None to relay this response."""
        status = response.status
        if ring is not None and key is not None and self.policy.moves_key(status):
            tried.add(key)
            other = ring.next_except(tried)
            if other is not None:
                ex.real_key = other
                return 0.0
        if not self.policy.retryable(status) or response.headers.get(SHOULD_RETRY) == "false":
            return None
        return self.policy.wait_before(retry, response.headers)

    def finish(self, ex: Exchange) -> None:
        if ex.outcome.attempts > 1:
            ex.response_headers.append((ATTEMPTS_HEADER, str(ex.outcome.attempts).encode()))
            ex.response_headers.append(_NO_MORE_RETRIES)
