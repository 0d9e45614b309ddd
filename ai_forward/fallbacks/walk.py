"""The walk along a model's chain: the retrier, called anew for each model in turn.

The retrier (resilience/) spends one model's attempts; when they end on a cause
another model may not share (429, 5xx, a timeout, an unreachable upstream) or
on an answer that says this model cannot take the request (context length,
model not found, body too large), the walk sets the exchange's model override
and calls the retrier again: the planners read the override, so the next
attempt goes to whichever provider MODEL_ROUTES names for that model. All of
this runs before the relay sends the client a byte, so a stream that broke
after its first chunk is never asked of another model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase

import aiohttp
from loguru import logger

from ..errors import GatewayError, UpstreamTimeout, UpstreamUnreachable
from ..exchange import FALLBACKS_OF, MODEL_OVERRIDE, Exchange, StateKey
from ..keys import Credential, KeyKind, KeyRing
from ..pipeline import Attempt, Retrier
from ..providers.reply import Reply, once
from ..resilience.retrier import ATTEMPTS_HEADER
from ..upstream import UpstreamResponse
from .verdict import fallback_reason, worth_reading

MODEL_HEADER = b"x-aifd-model"
ERROR_BODY_LIMIT = 64 * 1024
# Set while a chain is walked: the planner then asks for an uncompressed answer.
CHAINED = StateKey[bool]("fallback chain walked")

Failure = UpstreamResponse | GatewayError


class FallbackWalk:
    """Calls the retrier for the exchange's model, then for each of its fallbacks in turn."""

    def __init__(
        self,
        retrier: Retrier,
        chains: Mapping[str, tuple[str, ...]],
        rings: Mapping[str, KeyRing],
        read_timeout: float,
    ) -> None:
        self.retrier = retrier
        self.chains = chains
        self.rings = rings
        self.read_timeout = read_timeout

    def fallbacks_of(self, ex: Exchange) -> Callable[[str], tuple[str, ...]]:
        """A model's fallbacks that this exchange's user may use (an issued key's models)."""
        allowed = ex.principal.models if ex.principal is not None else ()

        def of(model: str) -> tuple[str, ...]:
            chain = self.chains.get(model, ())
            if not allowed:
                return chain
            return tuple(m for m in chain if any(fnmatchcase(m, a) for a in allowed))

        return of

    def chain(self, ex: Exchange) -> tuple[str, ...]:
        """The models to ask in turn, the client's first; one model when there is no chain."""
        # A client's own key (relay mode) belongs to one provider: it goes nowhere else.
        if ex.key_kind is KeyKind.RELAY or ex.method != "POST":
            return ()
        if ex.header(b"x-host-final") is not None:
            return ()
        model = ex.model
        if not model:
            return ()
        of = self.fallbacks_of(ex)
        if "," in model:  # several models: the fan-out walks each model's chain itself
            ex.set(FALLBACKS_OF, of)
            return ()
        chain = of(model)
        return (model, *chain) if chain else ()

    async def __call__(self, ex: Exchange, attempt: Attempt) -> UpstreamResponse:
        models = self.chain(ex)
        if not models:
            return await self.retrier(ex, attempt)
        ex.set(CHAINED, True)
        walked: list[tuple[str, int]] = []
        failure: tuple[str, Failure] | None = None
        try:
            for step, model in enumerate(models):
                last = step == len(models) - 1
                if step:
                    ex.set(MODEL_OVERRIDE, model)
                    ex.credential = self.fresh_credential(ex)
                try:
                    response = await self.retrier(ex, attempt)
                except (UpstreamTimeout, UpstreamUnreachable) as err:
                    walked.append((model, ex.outcome.attempts))
                    if last:
                        raise
                    failure = (model, err)
                    reason = "timeout" if isinstance(err, UpstreamTimeout) else "unreachable"
                except GatewayError as err:
                    if not step:
                        raise
                    # Planning refused this fallback (its provider cannot take the request).
                    logger.info("fallback {} skipped: {}", model, err.message)
                    continue
                else:
                    walked.append((model, ex.outcome.attempts))
                    if last:
                        return self.answered(ex, model, response)
                    reason, response = await self.judge(response)
                    if not reason:
                        return self.answered(ex, model, response)
                    failure = (model, response)
                ex.outcome.retried.append(f"{model}: {reason}, next model")
                logger.info("route {}: {} failed ({}), next model", ex.route.name, model, reason)
            assert failure is not None  # the first model either answers, raises or fails
            model, failed = failure
            if isinstance(failed, GatewayError):
                raise failed
            return self.answered(ex, model, failed)
        finally:
            self.count(ex, walked)

    def answered(self, ex: Exchange, model: str, response: UpstreamResponse) -> UpstreamResponse:
        ex.set(MODEL_OVERRIDE, model)
        ex.response_headers.append((MODEL_HEADER, model.encode()))
        return response

    def count(self, ex: Exchange, walked: list[tuple[str, int]]) -> None:
        """`x-aifd-attempts`: the attempts when one model was asked, else model=attempts, ...."""
        headers = [h for h in ex.response_headers if h[0] != ATTEMPTS_HEADER]
        total = sum(n for _, n in walked)
        ex.outcome.attempts = max(total, 1)
        if len(walked) > 1:
            listed = ", ".join(f"{model}={n}" for model, n in walked)
            headers.append((ATTEMPTS_HEADER, listed.encode()))
        elif total > 1:
            headers.append((ATTEMPTS_HEADER, str(total).encode()))
        ex.response_headers[:] = headers

    def fresh_credential(self, ex: Exchange) -> Credential | None:
        """The route's next real key, as the key swap gave the first model: a provider's
        planner draws its own, and no key of one provider ever goes to another."""
        return Credential.draw(self.rings.get(ex.route.prefix)) if ex.key_kind.ours else None

    async def judge(self, response: UpstreamResponse) -> tuple[str, UpstreamResponse]:
        """Why the next model should be asked ("" if not), and the answer, replayable."""
        status = response.status
        if not worth_reading(status):
            return "", response
        body = await self.read(response)
        headers = [
            (name.lower(), value)
            for name, value in response.raw_headers
            if name.lower() not in (b"content-length", b"transfer-encoding")
        ]
        headers.append((b"content-length", str(len(body)).encode()))
        return fallback_reason(status, body), Reply(status, headers, once(body))

    async def read(self, response: UpstreamResponse) -> bytes:
        """The error body, bounded in size and time; the connection goes back to the pool."""
        data = bytearray()
        whole = False
        try:
            async with asyncio.timeout(self.read_timeout):
                async for chunk in response.content.iter_any():
                    data += chunk[: ERROR_BODY_LIMIT - len(data)]
                    if len(data) >= ERROR_BODY_LIMIT:
                        break
                else:
                    whole = True
        except (aiohttp.ClientError, TimeoutError):
            pass
        if whole:
            response.release()
        else:
            response.close()
        return bytes(data)
