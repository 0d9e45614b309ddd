"""FALLBACKS is read once at start-up; a malformed chain stops start-up with a clear message."""

from __future__ import annotations

import pytest

from ai_forward.app import Gateway
from ai_forward.settings import Settings, SettingsError
from ai_forward.settings_doc import settings_help


def test_chains_are_read_in_order() -> None:
    settings = Settings.from_env(
        {"FALLBACKS": " gpt-4o = claude-3-5-sonnet-latest , gemini-1.5-pro ; gpt-4o-mini=x ;"}
    )
    assert dict(settings.fallbacks.chains) == {
        "gpt-4o": ("claude-3-5-sonnet-latest", "gemini-1.5-pro"),
        "gpt-4o-mini": ("x",),
    }


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("gpt-4o", "not model=fallback"),
        ("gpt-4o=", "not model=fallback"),
        ("gpt-4o=a,,b", "not model=fallback"),
        ("=a", "not model=fallback"),
        ("a,b=c", "one model before"),
        ("a=b;a=c", "two chains"),
        ("a=b,a", "twice"),
        ("a=b,b", "twice"),
        ("a=" + ",".join(f"m{i}" for i in range(9)), "more than 8"),
    ],
)
def test_malformed_chains_are_refused_naming_the_setting(value: str, says: str) -> None:
    with pytest.raises(SettingsError, match=says) as caught:
        Settings.from_env({"FALLBACKS": value})
    assert "FALLBACKS" in str(caught.value)


def test_without_fallbacks_nothing_wraps_the_retrier() -> None:
    plain = Gateway(Settings.from_env({}))
    chained = Gateway(Settings.from_env({"FALLBACKS": "a=b"}))
    assert type(plain.forwarder.retrier).__name__ == "Retrier"
    assert type(chained.forwarder.retrier).__name__ == "FallbackWalk"


def test_help_names_the_setting() -> None:
    assert "`FALLBACKS`" in settings_help()
