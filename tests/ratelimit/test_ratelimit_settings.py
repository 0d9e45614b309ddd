"""Rate limit settings: every accepted form, and malformed ones stop start-up naming the setting."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ai_forward.ratelimit.settings import LimitRule
from ai_forward.settings import Settings, SettingsError
from tests.processes import AIFD, clean_env

ROOT = Path(__file__).resolve().parents[2]  # run this checkout, whatever is installed


def rules(found: tuple[LimitRule, ...]) -> list[tuple[str, list[str]]]:
    return [(rule.pattern, [str(item) for item in rule.limits]) for rule in found]


def test_defaults_count_nothing_in_memory() -> None:
    settings = Settings.from_env({}).limits
    assert not settings.counting and not settings.pace
    assert (settings.strategy, settings.backend, settings.fail_open) == (
        "moving-window",
        "memory://",
        True,
    )


def test_path_rules_several_limits_and_a_default() -> None:
    settings = Settings.from_env(
        {
            "REQ_RATE_LIMIT": "/v1/chat/completions=60/minute,1000/day; "
            "/v1/embeddings=600/minute;5/second"
        }
    ).limits
    assert rules(settings.requests) == [
        ("/v1/chat/completions", ["60 per 1 minute", "1000 per 1 day"]),
        ("/v1/embeddings", ["600 per 1 minute"]),
        ("*", ["5 per 1 second"]),
    ]


@pytest.mark.parametrize(
    "value",
    [
        '{"/v1/chat/completions": "60/minute", "/v1/embeddings": "600/minute"}',
        '[{"route": "/v1/chat/completions", "value": [{"level": 0, "limit": "60/minute"},'
        ' {"level": 1, "limit": "5/minute"}]}, {"route": "/v1/embeddings", "value": "600/minute"}]',
    ],
)
def test_openai_forward_json_forms_are_accepted(value: str) -> None:
    settings = Settings.from_env({"REQ_RATE_LIMIT": value, "TOKEN_RATE_LIMIT": value}).limits
    expected = [
        ("/v1/chat/completions", ["60 per 1 minute"]),
        ("/v1/embeddings", ["600 per 1 minute"]),
    ]
    everyone = [r for r in settings.requests if r.level in (None, 0)]
    assert rules(tuple(everyone)) == expected
    assert rules(tuple(r for r in settings.pace if r.level in (None, 0))) == expected


def test_openai_forward_names_and_values() -> None:
    settings = Settings.from_env(
        {
            "REQ_RATE_LIMIT_BACKEND": "redis://localhost:6379/1",
            "RATE_LIMIT_STRATEGY": "fixed-window-elastic-expiry",
            "GLOBAL_RATE_LIMIT": "inf",
        }
    ).limits
    assert settings.backend == "redis://localhost:6379/1" and settings.shared
    assert settings.strategy == "fixed-window"
    assert settings.global_limits == ()


def test_rules_match_exact_paths_prefixes_and_everything() -> None:
    assert LimitRule("/v1/chat/completions", ()).matches("/v1/chat/completions/")
    assert not LimitRule("/v1/chat/completions", ()).matches("/v1/chat/completions/x")
    assert LimitRule("/localai/*", ()).matches("/localai/v1/models")
    assert LimitRule("*", ()).matches("/anything")


@pytest.mark.parametrize(
    ("env", "named", "hint"),
    [
        ({"REQ_RATE_LIMIT": "/v1/chat/completions=60/fortnight"}, "REQ_RATE_LIMIT", "60/minute"),
        ({"REQ_RATE_LIMIT": "v1/chat=60/minute"}, "REQ_RATE_LIMIT", "start it with /"),
        ({"REQ_RATE_LIMIT": '{"/v1/chat": 60}'}, "REQ_RATE_LIMIT", "/v1/chat/completions"),
        ({"REQ_RATE_LIMIT": "{not json"}, "REQ_RATE_LIMIT", "JSON"),
        ({"TPM_LIMIT": "lots"}, "TPM_LIMIT", "60/minute"),
        ({"TPM_LIMIT": "0/minute"}, "TPM_LIMIT", "60/minute"),
        ({"TOKEN_RATE_LIMIT": "/v1/chat/completions=fast"}, "TOKEN_RATE_LIMIT", "60/minute"),
        ({"GLOBAL_RATE_LIMIT": "1000"}, "GLOBAL_RATE_LIMIT", "60/minute"),
        ({"RATE_LIMIT_STRATEGY": "token-bucket"}, "RATE_LIMIT_STRATEGY", "moving-window"),
        ({"RATE_LIMIT_BACKEND": "mysql://db"}, "RATE_LIMIT_BACKEND", "redis://"),
        ({"RATE_LIMIT_BACKEND": "redis://"}, "RATE_LIMIT_BACKEND", "redis://host"),
        ({"REQ_RATE_LIMIT_BACKEND": "redis://h:port"}, "REQ_RATE_LIMIT_BACKEND", "port"),
        (
            {"RATE_LIMIT_BACKEND": "redis://a", "REQ_RATE_LIMIT_BACKEND": "redis://b"},
            "REQ_RATE_LIMIT_BACKEND",
            "only RATE_LIMIT_BACKEND",
        ),
        ({"RATE_LIMIT_FAIL": "sometimes"}, "RATE_LIMIT_FAIL", "open or closed"),
        ({"IP_BLACKLIST": "10.0.0.300"}, "IP_BLACKLIST", "CIDR"),
        ({"TRUSTED_PROXIES": "proxy.local"}, "TRUSTED_PROXIES", "CIDR"),
    ],
)
def test_malformed_settings_name_the_setting_and_the_form(
    env: dict[str, str], named: str, hint: str
) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert named in str(info.value)
    assert hint in str(info.value)


def test_a_malformed_limit_stops_aifd_run(tmp_path: Path) -> None:
    result = subprocess.run(
        [*AIFD, "run"],
        cwd=tmp_path,
        env=clean_env(REQ_RATE_LIMIT="/v1/chat/completions=sixty", PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "REQ_RATE_LIMIT" in result.stderr and "60/minute" in result.stderr
