"""The retry loop around one upstream call.

`Forwarder.relay` hands the retrier a zero-argument `attempt` that plans the
request from the exchange and sends it. Each retry calls it again, so a retry
on another key only needs the exchange's credential moved (by the key rotation
flow, `rotation.py`): whoever plans the request (the passthrough planner or a
provider's) builds URL and headers for it. The loop runs before anything is
sent to the client, so a retry is always safe to make.
"""

from __future__ import annotations

import asyncio

from loguru import logger

from ..errors import UpstreamTimeout, UpstreamUnreachable
from ..exchange import Exchange
from ..pipeline import Attempt, Contribution, Shared
from ..settings import Settings
from ..upstream import UpstreamResponse
from .policy import RetryPolicy
from .rotation import key_rotation

UpstreamError = UpstreamTimeout | UpstreamUnreachable
ATTEMPTS_HEADER = b"x-aifd-attempts"
# The SDKs' own retry signal: honoured from the upstream, and sent once the gateway has
# retried, so that the client's retries do not multiply with the gateway's.
SHOULD_RETRY = "x-should-retry"
_NO_MORE_RETRIES = (SHOULD_RETRY.encode(), b"false")


def install(settings: Settings, shared: Shared) -> Contribution:
    """The retrier, with RETRIES, RETRY_* and KEY_COOLDOWN."""
    return Contribution(retrier=Retrier(RetryPolicy(settings.resilience)))


class Retrier:
    """Calls `attempt` until it gives an answer worth relaying, or the retries run out."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    async def __call__(self, ex: Exchange, attempt: Attempt) -> UpstreamResponse:
        # Nearly every request: one attempt, answered below 400. Only its key's record of
        # refusals is cleared; the loop below (and the key rotation) is for the others.
        ex.outcome.attempts = 1  # anew for each model a fallback walk tries
        try:
            first: UpstreamResponse | UpstreamError = await attempt()
        except (UpstreamTimeout, UpstreamUnreachable) as err:
            if not self.policy.retries:
                raise
            first = err
        if not isinstance(first, UpstreamError) and first.status < 400:
            credential = ex.credential
            if credential is not None:
                credential.ring.clear(credential.key)
            return first
        return await self.retry(ex, attempt, first)

    async def retry(
        self, ex: Exchange, attempt: Attempt, first: UpstreamResponse | UpstreamError
    ) -> UpstreamResponse:
        """The loop, from the first attempt's answer (or its failure) on."""
        policy = self.policy
        keys = key_rotation(ex, policy)
        next(keys)
        for retry in range(policy.retries + 1):
            ex.outcome.attempts = retry + 1
            last = retry == policy.retries
            try:
                response = await attempt() if retry else settle(first)
            except (UpstreamTimeout, UpstreamUnreachable) as err:
                if last:
                    self.finish(ex)
                    if retry:
                        err.message += f" (gave up after {retry + 1} attempts)"
                    raise
                reason = "timeout" if isinstance(err, UpstreamTimeout) else "unreachable"
                delay = policy.backoff(retry)
            else:
                status = response.status
                if keys.send((status, not last)):
                    wait: float | None = 0.0  # at once, on the ring's next key
                elif (
                    last
                    or not policy.retryable(status)
                    or response.headers.get(SHOULD_RETRY) == "false"
                ):
                    wait = None
                else:
                    wait = policy.wait_before(retry, response.headers)
                if wait is None:
                    self.finish(ex)
                    return response
                delay = wait
                reason = str(status)
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

    def finish(self, ex: Exchange) -> None:
        if ex.outcome.attempts > 1:
            ex.response_headers.append((ATTEMPTS_HEADER, str(ex.outcome.attempts).encode()))
            ex.response_headers.append(_NO_MORE_RETRIES)


def settle(first: UpstreamResponse | UpstreamError) -> UpstreamResponse:
    """The first attempt's answer, or its failure raised again."""
    if isinstance(first, (UpstreamTimeout, UpstreamUnreachable)):
        raise first
    return first
