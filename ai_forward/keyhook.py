"""Key swap: a forward key (or no key, with open access) gets the route's next real key.

The real key goes upstream in the header the client used; any other client key
is relayed unchanged (issued user keys are recognised later, by `users/`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .exchange import BeforeOnly, Exchange
from .keys import Credential, KeyKind, KeyRing, KeySet, find_key
from .pipeline import Contribution, Shared
from .settings import Settings


class KeyHook(BeforeOnly):
    """Decides whose key goes upstream: a real key for forward keys, else the client's."""

    def __init__(self, forward_keys: Iterable[str], rings: Mapping[str, KeyRing]) -> None:
        self.forward_keys = KeySet(forward_keys)
        self.rings = rings

    async def before(self, ex: Exchange) -> None:
        key = find_key(ex.headers)
        ex.key = key
        ring = self.rings.get(ex.route.prefix)
        if key is not None and key.value in self.forward_keys:
            ex.key_kind = KeyKind.FORWARD
            ex.credential = Credential.draw(ring)
        elif key is not None:
            ex.key_kind = KeyKind.RELAY
        elif ring and not self.forward_keys:
            ex.key_kind = KeyKind.OPEN
            ex.credential = Credential.draw(ring)


def install(settings: Settings, shared: Shared) -> Contribution:
    return Contribution(hooks=(KeyHook(settings.forward_keys, shared.rings),))
