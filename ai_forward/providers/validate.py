"""The shape of an OpenAI chat request, checked once before any provider translates it.

Translations read field after field and trust the JSON types they find. A body with a
wrong type anywhere (`content: 123`, `tools: "x"`, `stop: 5`) is refused here with a
400 naming the field as OpenAI does (`messages[1].content`), never a crash mid-way.
Whether a provider supports a well-formed field is the provider's own check.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest
from .base import JSON

INTEGERS = ("max_tokens", "max_completion_tokens", "n", "top_k", "seed")
NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
BOOLEANS = ("stream", "logprobs", "parallel_tool_calls", "store")
OBJECTS = ("stream_options", "metadata", "response_format")
STRINGS = ("user", "service_tier")


class InvalidType(InvalidRequest):
    code = "invalid_type"


def invalid(param: str, wanted: str) -> InvalidType:
    return InvalidType(f"'{param}' must be {wanted}", param=param)


def check_chat(body: JSON) -> None:
    """Raise InvalidType for the first field of `body` whose JSON type is wrong."""
    if not isinstance(body.get("model"), str):
        raise invalid("model", "a string naming the model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages", "a non-empty array of message objects")
    for i, message in enumerate(messages):
        check_message(message, f"messages[{i}]")
    for name in INTEGERS:
        if not optional(body.get(name), int):
            raise invalid(name, "an integer")
    for name in NUMBERS:
        if not optional(body.get(name), int, float):
            raise invalid(name, "a number")
    for name in BOOLEANS:
        if body.get(name) is not None and not isinstance(body[name], bool):
            raise invalid(name, "true or false")
    for name in OBJECTS:
        if not optional(body.get(name), dict):
            raise invalid(name, "an object")
    for name in STRINGS:
        if not optional(body.get(name), str):
            raise invalid(name, "a string")
    check_stop(body.get("stop"))
    check_tools(body.get("tools"))
    check_tool_choice(body.get("tool_choice"))
    response_format = body.get("response_format") or {}
    if not optional(response_format.get("type"), str):
        raise invalid("response_format.type", "a string")
    if not optional(response_format.get("json_schema"), dict):
        raise invalid("response_format.json_schema", "an object")


def optional(value: Any, *kinds: type) -> bool:
    """`value` is absent (None) or of one of `kinds` (a bool is not a number here)."""
    if value is None:
        return True
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)


def check_message(message: Any, at: str) -> None:
    if not isinstance(message, dict):
        raise invalid(at, "a message object with a role")
    if not isinstance(message.get("role"), str):
        raise invalid(f"{at}.role", "a string: system, developer, user, assistant or tool")
    for name in ("name", "tool_call_id"):
        if not optional(message.get(name), str):
            raise invalid(f"{at}.{name}", "a string")
    check_content(message.get("content"), f"{at}.content")
    calls = message.get("tool_calls")
    if not optional(calls, list):
        raise invalid(f"{at}.tool_calls", "an array of tool call objects")
    for i, call in enumerate(calls or ()):
        where = f"{at}.tool_calls[{i}]"
        if not isinstance(call, dict):
            raise invalid(where, "a tool call object")
        if not optional(call.get("id"), str):
            raise invalid(f"{where}.id", "a string")
        function = call.get("function")
        if not isinstance(function, dict) or not optional(function.get("name"), str):
            raise invalid(f"{where}.function", "an object with a string `name`")
        if not optional(function.get("arguments"), str, dict):
            raise invalid(f"{where}.function.arguments", "a string of JSON")


def check_content(content: Any, at: str) -> None:
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise invalid(at, "a string or an array of content parts")
    for i, part in enumerate(content):
        where = f"{at}[{i}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise invalid(where, "a content part object with a string `type`")
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise invalid(f"{where}.text", "a string")
        if part["type"] == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise invalid(f"{where}.image_url.url", "a string: an https or data: URL")


def check_stop(stop: Any) -> None:
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise invalid("stop", "a string or an array of strings")


def check_tools(tools: Any) -> None:
    if not optional(tools, list):
        raise invalid("tools", "an array of tool objects")
    for i, tool in enumerate(tools or ()):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or not optional(tool.get("type"), str):
            raise invalid(where, 'a tool object such as {"type": "function", "function": {...}}')
        function = tool.get("function")
        if not optional(function, dict):
            raise invalid(f"{where}.function", "an object")
        function = function or {}
        if not optional(function.get("name"), str):
            raise invalid(f"{where}.function.name", "a string")
        if not optional(function.get("description"), str):
            raise invalid(f"{where}.function.description", "a string")
        if not optional(function.get("parameters"), dict):
            raise invalid(f"{where}.function.parameters", "a JSON Schema object")


def check_tool_choice(choice: Any) -> None:
    if choice is None or isinstance(choice, str):
        return
    function = choice.get("function") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or not optional(function, dict):
        raise invalid("tool_choice", 'a string or {"type": "function", "function": {"name": ...}}')
    if not optional((function or {}).get("name"), str):
        raise invalid("tool_choice.function.name", "a string")
