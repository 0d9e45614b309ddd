"""The start-up banner: what this instance will do, at a glance, and never a secret."""

from __future__ import annotations

from pathlib import Path

from ai_forward.ops.banner import describe
from ai_forward.settings import Settings

SECRETS = ("sk-real-aaaaaaaa", "sk-real-bbbbbbbb", "fk-forward-cccccccc", "pass-dddddddd")


def banner(tmp_path: Path, **env: str) -> str:
    base = {
        "OPENAI_BASE_URL": "http://127.0.0.1:9",
        "OPENAI_API_KEY": "sk-real-aaaaaaaa,sk-real-bbbbbbbb",
        "FORWARD_KEY": "fk-forward-cccccccc",
        "STORE_URL": f"sqlite:///{tmp_path / 'users.db'}",
        "LOG_DIR": str(tmp_path / "logs"),
    }
    return describe(Settings.from_env({**base, **env}), "9.9.9", {"user store": "ok"})


def test_the_banner_names_every_part_with_counts_and_no_key(tmp_path: Path) -> None:
    text = banner(
        tmp_path,
        REQ_RATE_LIMIT="/v1/chat/completions=60/minute",
        LOG_CHAT="true",
        METRICS="true",
        UPSTREAM_POOL_SIZE="500",
    )
    assert "ai-forward 9.9.9" in text
    assert "/ -> http://127.0.0.1:9 (2 keys)" in text
    assert "upstream:     builtin HTTP client (at most 500 connections)" in text
    assert "forward keys: 1 key" in text
    assert "limits:" in text and "/v1/chat/completions 60/60s" in text
    assert "chat log:" in text and "metrics:" in text and "/metrics" in text
    assert not any(secret in text for secret in SECRETS)


def test_the_banner_says_which_client_calls_upstream_and_masks_a_proxy_password(
    tmp_path: Path,
) -> None:
    assert "aiohttp HTTP client" in banner(tmp_path, UPSTREAM_CLIENT="aiohttp")
    text = banner(tmp_path, PROXY="http://user:pass-dddddddd@127.0.0.1:3128")
    assert "aiohttp through PROXY" in text and "127.0.0.1:3128" in text
    assert "pass-dddddddd" not in text
    assert "unbounded" in banner(tmp_path, UPSTREAM_POOL_SIZE="0")
