"""Token estimates of requests: the right size, whatever shape the body has."""

from __future__ import annotations

from typing import Any

import pytest

from ai_forward.observe.tokens import (
    DEFAULT_COMPLETION_RESERVE,
    NON_TEXT_PART_TOKENS,
    estimate_request,
    prompt_tokens,
)


def test_text_is_counted_at_four_characters_a_token_wherever_it_is() -> None:
    body = {
        "model": "gpt-4o-mini",  # names and roles are not text the model reads as prompt
        "messages": [
            {"role": "system", "content": "x" * 40},
            {"role": "user", "content": [{"type": "text", "text": "y" * 40}]},
        ],
        "tools": [{"function": {"description": "z" * 40}}],
    }
    assert prompt_tokens(body) == 30


def test_images_and_audio_count_as_fixed_parts_and_data_urls_are_not_text() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 10_000}}
    body = {"messages": [{"role": "user", "content": [image, "data:xyz", "abcd"]}]}
    assert prompt_tokens(body) == 1 + NON_TEXT_PART_TOKENS


@pytest.mark.parametrize("kind", [[1], {"a": 1}, 7, None])
def test_a_type_field_that_is_not_a_string_is_read_not_a_crash(kind: Any) -> None:
    assert prompt_tokens({"messages": [{"type": kind, "content": "abcd"}]}) >= 1


def test_nesting_past_twelve_levels_is_not_followed() -> None:
    deep: dict[str, Any] = {"text": "a" * 400}
    for _ in range(20):
        deep = {"inner": deep}
    assert prompt_tokens({"input": deep}) == 0
    assert prompt_tokens({"input": {"text": "a" * 400}}) == 100


def test_the_estimate_adds_what_the_request_may_generate() -> None:
    body = {"messages": [{"role": "user", "content": "abcd"}]}
    path = "/v1/chat/completions"
    assert estimate_request(body, path, 0) == 1 + DEFAULT_COMPLETION_RESERVE
    assert estimate_request({**body, "max_tokens": 10}, path, 0) == 11
    assert estimate_request({**body, "max_completion_tokens": 5, "n": 3}, path, 0) == 16
    assert estimate_request(body, "/v1/embeddings", 0) == 1
    assert estimate_request(None, path, 400) == 100
