"""Key rotation on 401/429: one flow moves the exchange's credential, without a network."""

from __future__ import annotations

from ai_forward.exchange import Exchange
from ai_forward.keys import Credential, KeyRing
from ai_forward.resilience.policy import RetryPolicy
from ai_forward.resilience.rotation import key_rotation
from ai_forward.resilience.settings import ResilienceSettings
from ai_forward.settings import Route


def exchange() -> Exchange:
    return Exchange(
        scope={},
        route=Route("/", "http://upstream.test"),
        method="POST",
        path="/v1/chat/completions",
        upstream_path="/v1/chat/completions",
        raw_upstream_path="/v1/chat/completions",
        query=b"",
        headers=[],
        body=b"{}",
        client_ip="10.0.0.1",
    )


def test_a_401_moves_to_the_next_key_and_cools_the_refused_one() -> None:
    ring = KeyRing(["sk-1", "sk-2", "sk-3"])
    ex = exchange()
    ex.credential = Credential.draw(ring)
    flow = key_rotation(ex, RetryPolicy(ResilienceSettings(key_cooldown=60)))
    next(flow)
    assert flow.send((401, True)) is True
    assert ex.real_key == "sk-2" and ring.cooling("sk-1")
    assert flow.send((401, True)) is True
    assert ex.real_key == "sk-3"
    assert flow.send((401, True)) is False  # every key tried: the answer goes to the client
    assert ex.real_key == "sk-3"


def test_the_last_attempt_keeps_its_key_and_other_statuses_do_not_rotate() -> None:
    ring = KeyRing(["sk-1", "sk-2"])
    ex = exchange()
    ex.credential = Credential.draw(ring)
    flow = key_rotation(ex, RetryPolicy(ResilienceSettings()))
    next(flow)
    assert flow.send((503, True)) is False and ex.real_key == "sk-1"
    assert flow.send((429, False)) is False and ex.real_key == "sk-1"  # no attempt follows
    assert flow.send((200, True)) is False


def test_without_a_credential_the_flow_does_nothing() -> None:
    ex = exchange()
    flow = key_rotation(ex, RetryPolicy(ResilienceSettings()))
    next(flow)
    assert flow.send((401, True)) is False
    assert ex.real_key is None
