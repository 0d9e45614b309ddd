"""The key of a request's entry: canonical, and remembered for bodies seen before."""

from __future__ import annotations

from ai_forward.cache import key as cache_key_module
from ai_forward.cache.key import CacheKeys, cache_key
from ai_forward.exchange import Exchange
from ai_forward.keys import KeyKind, PresentedKey
from ai_forward.settings import Route

ROUTE = Route("/", "http://upstream.invalid")
PATH = "/v1/chat/completions"


def exchange(body: bytes, key: str | None = "fk-a", kind: KeyKind = KeyKind.FORWARD) -> Exchange:
    headers = [(b"content-type", b"application/json")]
    ex = Exchange({}, ROUTE, "POST", PATH, PATH, PATH, b"", headers, body, "10.0.0.1")
    if key is not None:
        ex.key, ex.key_kind = PresentedKey(b"authorization", key), kind
    return ex


def computed(keys: CacheKeys, ex: Exchange) -> str:
    body = ex.json()
    assert body is not None
    return cache_key(ex, body, keys.identity(ex))


def test_a_remembered_key_is_the_key_computed_anew() -> None:
    keys = CacheKeys(shared=False)
    body = b'{"model":"m","messages":[],"stream":true}'
    first = keys.lookup(exchange(body))
    again = keys.lookup(exchange(body))
    assert first is not None and first == again
    assert first.key == computed(CacheKeys(shared=False), exchange(body))
    assert (first.streamed, first.usage) == (True, False)


def test_key_order_and_spacing_do_not_change_the_key() -> None:
    keys = CacheKeys(shared=True)
    one = keys.lookup(exchange(b'{"model": "m", "messages": [], "user": "a"}'))
    two = keys.lookup(exchange(b'{"messages":[],"model":"m"}'))
    assert one is not None and two is not None and one.key == two.key


def test_the_same_bytes_from_another_client_get_another_key() -> None:
    keys = CacheKeys(shared=False)
    body = b'{"model":"m","messages":[]}'
    looked = [keys.lookup(exchange(body, key)) for key in ("fk-a", "fk-b", "fk-a")]
    relayed = keys.lookup(exchange(body, "sk-own", KeyKind.RELAY))
    keyless = keys.lookup(exchange(body, None))
    found = {entry.key for entry in [*looked, relayed, keyless] if entry is not None}
    assert len(found) == 4
    assert looked[0] == looked[2]


def test_what_is_remembered_stays_bounded() -> None:
    keys = CacheKeys(shared=True)
    limit = cache_key_module.MEMO_ENTRIES
    for i in range(limit * 2 + 5):
        keys.lookup(exchange(b'{"model":"m","n":%d}' % i))
    assert len(keys._seen) <= limit
    assert keys.lookup(exchange(b"[1, 2]")) is None  # not an object: nothing to cache
