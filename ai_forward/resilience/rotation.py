"""Key rotation: the one flow that moves an exchange to another real key.

Modelled on an auth flow: the retrier sends in each upstream answer, the flow
says whether to try again at once on another key. It keeps the refused keys'
record (a 401, or repeated 429s, cools a key down) and is the only code that
changes the exchange's real key once it has been drawn.
"""

from __future__ import annotations

from collections.abc import Generator

from ..exchange import Exchange
from .policy import RetryPolicy

# Sent in: (status of the answer, whether another attempt may follow).
KeyFlow = Generator[bool, tuple[int, bool], None]


def key_rotation(ex: Exchange, policy: RetryPolicy) -> KeyFlow:
    """Start with ``next(flow)``; then ``flow.send((status, more))`` after each answer
    gives True when the next attempt should go at once on another key of the ring."""
    tried: set[str] = set()
    rotate = False
    while True:
        status, more = yield rotate
        rotate = False
        # Read anew each time: a planner may draw from another ring at each attempt.
        credential = ex.credential
        if credential is None:
            continue
        policy.account(credential.ring, credential.key, status)
        if more and policy.moves_key(status):
            tried.add(credential.key)
            other = credential.ring.next_except(tried)
            if other is not None:
                credential.key = other
                rotate = True
