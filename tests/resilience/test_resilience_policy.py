"""The retry policy, the key ring's cooldown and the resilience settings, without a network."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from ai_forward.keys import KeyRing
from ai_forward.resilience.policy import RetryPolicy, retry_after
from ai_forward.resilience.settings import ResilienceSettings
from ai_forward.settings import Settings, SettingsError
from ai_forward.upstream import Upstream


def test_defaults() -> None:
    settings = Settings.from_env({})
    resilience = settings.resilience
    assert resilience == ResilienceSettings()
    assert (resilience.retries, resilience.first_byte_timeout, resilience.shutdown_grace) == (
        2,
        600.0,
        30.0,
    )
    upstream = Upstream(settings)
    assert upstream.connect_timeout == upstream.idle_timeout == settings.timeout == 300.0


def test_timeouts_fall_back_to_timeout_only_where_unset() -> None:
    upstream = Upstream(Settings.from_env({"TIMEOUT": "20", "IDLE_TIMEOUT": "5"}))
    assert (upstream.connect_timeout, upstream.idle_timeout, upstream.first_byte_timeout) == (
        20.0,
        5.0,
        600.0,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RETRIES": "-1"}, "RETRIES"),
        ({"RETRIES": "11"}, "RETRIES"),
        ({"RETRIES": "two"}, "RETRIES"),
        ({"RETRY_BACKOFF": "2", "RETRY_BACKOFF_MAX": "1"}, "RETRY_BACKOFF_MAX"),
        ({"RETRY_AFTER_MAX": "-3"}, "RETRY_AFTER_MAX"),
        ({"KEY_COOLDOWN": "soon"}, "KEY_COOLDOWN"),
        ({"CONNECT_TIMEOUT": "0"}, "CONNECT_TIMEOUT"),
        ({"FIRST_BYTE_TIMEOUT": "0"}, "FIRST_BYTE_TIMEOUT"),
        ({"IDLE_TIMEOUT": "-1"}, "IDLE_TIMEOUT"),
        ({"SHUTDOWN_GRACE": "x"}, "SHUTDOWN_GRACE"),
    ],
)
def test_bad_values_stop_start_up_naming_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_retry_after_forms() -> None:
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after": "1.5"}) == 1.5
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "-4"}) == 0.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    seconds = retry_after({"retry-after": later})
    assert seconds is not None and 28 <= seconds <= 30


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    policy = RetryPolicy(
        ResilienceSettings(retry_backoff=0.5, retry_backoff_max=3.0), random.Random(7)
    )
    for retry, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 3.0), (60, 3.0)]:
        delays = [policy.backoff(retry) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # jitter spans the range
    assert RetryPolicy(ResilienceSettings(retry_backoff=0, retry_backoff_max=0)).backoff(3) == 0


def test_retry_after_beyond_the_cap_means_do_not_retry() -> None:
    policy = RetryPolicy(ResilienceSettings(retry_after_max=10))
    assert policy.wait_before(0, {"retry-after": "10"}) == 10
    assert policy.wait_before(0, {"retry-after": "11"}) is None
    assert policy.wait_before(0, {"retry-after": "inf"}) is None


def test_what_is_retried() -> None:
    policy = RetryPolicy(ResilienceSettings())
    assert [s for s in range(400, 600) if policy.retryable(s)] == [429, 500, 502, 503, 504]
    assert [s for s in range(400, 600) if policy.moves_key(s)] == [401, 429]


def test_ring_skips_cooling_keys_while_others_remain() -> None:
    ring = KeyRing(["a", "b", "c"])
    ring.cool("b", 60)
    assert [ring.next() for _ in range(4)] == ["a", "c", "a", "c"]
    ring.cool("a", 60)
    ring.cool("c", 60)
    assert ring.next() in ("a", "b", "c")  # all cooling: still serve, in turn
    assert ring.next_except(()) is None


def test_ring_cooldown_ends() -> None:
    ring = KeyRing(["a", "b"])
    ring.cool("a", 0.05)
    assert ring.cooling("a")
    assert [ring.next() for _ in range(2)] == ["b", "b"]
    time.sleep(0.06)
    assert not ring.cooling("a")
    assert sorted(ring.next() for _ in range(2)) == ["a", "b"]


def test_policy_cools_after_401_or_second_429_in_a_row() -> None:
    policy = RetryPolicy(ResilienceSettings(key_cooldown=60))
    ring = KeyRing(["a", "b"])
    policy.account(ring, "a", 429)
    assert not ring.cooling("a")
    policy.account(ring, "a", 200)
    policy.account(ring, "a", 429)
    assert not ring.cooling("a")  # the success in between reset the count
    policy.account(ring, "a", 429)
    assert ring.cooling("a")
    policy.account(ring, "b", 401)
    assert ring.cooling("b")
    ring.cool("unknown", 60)
    assert not ring.cooling("unknown")


def test_cooldown_zero_never_cools() -> None:
    policy = RetryPolicy(ResilienceSettings(key_cooldown=0))
    ring = KeyRing(["a", "b"])
    policy.account(ring, "a", 401)
    assert not ring.cooling("a")
