"""Anthropic Messages API (`POST /v1/messages`) behind OpenAI chat completions."""

from __future__ import annotations

from typing import Any

import orjson

from ..sse import SSEDecoder
from .base import (
    IGNORED,
    JSON,
    NEUTRAL,
    ChunkWriter,
    Endpoint,
    ProviderRequest,
    arguments,
    check_params,
    completion,
    data_url,
    stop_list,
    text_of,
    translate_events,
    unsupported,
    usage,
)

NAME = "anthropic"
KNOWN = (
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
    "top_k", "stop", "stream", "tools", "tool_choice", "parallel_tool_calls", "response_format",
    *IGNORED,
)  # fmt: skip
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class Anthropic:
    name: str = NAME
    paths: tuple[str, ...] = ("/v1/chat/completions", "/chat/completions")

    def __init__(self, version: str) -> None:
        self.version = version

    def build(self, body: JSON, endpoint: Endpoint) -> ProviderRequest:
        check_params(NAME, body, KNOWN, NEUTRAL)
        system, messages = convert_messages(body.get("messages"))
        out: JSON = {
            "model": body["model"],
            "messages": messages,
            "max_tokens": body.get("max_completion_tokens")
            or body.get("max_tokens")
            or endpoint.max_tokens,
        }
        if system:
            out["system"] = system
        for name in ("temperature", "top_p", "top_k", "stream"):
            if body.get(name) is not None:
                out[name] = body[name]
        if body.get("stop") is not None:
            out["stop_sequences"] = stop_list(body["stop"])
        if isinstance(body.get("user"), str):
            out["metadata"] = {"user_id": body["user"]}
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
            raise unsupported(NAME, "response_format", "no JSON mode; ask for JSON in the prompt")
        if body.get("tools"):
            out["tools"] = [convert_tool(t) for t in body["tools"]]
        choice = convert_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None and "tools" in out:
            out["tool_choice"] = choice
        headers = [
            (b"content-type", b"application/json"),
            (b"accept-encoding", b"identity"),
            (b"anthropic-version", self.version.encode()),
        ]
        if endpoint.key:
            headers.append((b"x-api-key", endpoint.key.encode()))
        return ProviderRequest(endpoint.origin.url("/v1/messages"), headers, orjson.dumps(out))

    def translate_reply(self, body: bytes, model: str) -> bytes:
        reply = orjson.loads(body)
        text: list[str] = []
        thinking: list[str] = []
        calls: list[JSON] = []
        for block in reply.get("content") or ():
            kind = block.get("type")
            if kind == "text":
                text.append(block.get("text", ""))
            elif kind == "thinking":
                thinking.append(block.get("thinking", ""))
            elif kind == "tool_use":
                calls.append(tool_call(block, len(calls)))
        content = "".join(text) if text or not calls else None
        message: JSON = {"role": "assistant", "content": content}
        if thinking:
            message["reasoning_content"] = "".join(thinking)
        if calls:
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
        choice = {
            "index": 0,
            "message": message,
            "finish_reason": FINISH.get(reply.get("stop_reason") or "", "stop"),
            "logprobs": None,
        }
        return orjson.dumps(
            completion(reply.get("id", ""), reply.get("model", model), [choice], usage_of(reply))
        )

    def stream(self, model: str, include_usage: bool) -> AnthropicStream:
        return AnthropicStream(model, include_usage)

    def error_message(self, body: bytes) -> str:
        try:
            error = orjson.loads(body).get("error") or {}
            return f"{error.get('type', 'error')}: {error.get('message', '')}"
        except (orjson.JSONDecodeError, AttributeError):
            return body[:500].decode("utf-8", "replace") or "no error message"


def usage_of(reply: JSON) -> JSON | None:
    raw = reply.get("usage")
    if not isinstance(raw, dict):
        return None
    cached = int(raw.get("cache_read_input_tokens") or 0)
    prompt = int(raw.get("input_tokens") or 0) + cached
    prompt += int(raw.get("cache_creation_input_tokens") or 0)
    return usage(prompt, int(raw.get("output_tokens") or 0), cached)


def tool_call(block: JSON, index: int) -> JSON:
    return {
        "index": index,
        "id": block.get("id", ""),
        "type": "function",
        "function": {
            "name": block.get("name", ""),
            "arguments": orjson.dumps(block.get("input") or {}).decode(),
        },
    }


def convert_messages(raw: Any) -> tuple[list[JSON], list[JSON]]:
    if not isinstance(raw, list) or not raw:
        raise unsupported(NAME, "messages", "a non-empty list of messages is required")
    system: list[JSON] = []
    out: list[JSON] = []
    for message in raw:
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("system", "developer"):
            system.append({"type": "text", "text": text_of(message.get("content"), NAME, role)})
            continue
        if role == "user":
            blocks = user_blocks(message.get("content"))
        elif role == "assistant":
            blocks = assistant_blocks(message)
        elif role == "tool":
            blocks = [
                {
                    "type": "tool_result",
                    "tool_use_id": message.get("tool_call_id", ""),
                    "content": text_of(message.get("content"), NAME, "tool"),
                }
            ]
            role = "user"
        else:
            raise unsupported(NAME, "messages", f"role {role!r}")
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return system, out


def user_blocks(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[JSON] = []
    for part in content or ():
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url") or {}
            url = image.get("url", "") if isinstance(image, dict) else str(image)
            inline = data_url(url)
            source = (
                {"type": "base64", "media_type": inline[0], "data": inline[1]}
                if inline
                else {"type": "url", "url": url}
            )
            blocks.append({"type": "image", "source": source})
        else:
            raise unsupported(NAME, "messages", f"{kind} content")
    return blocks


def assistant_blocks(message: JSON) -> list[JSON]:
    blocks: list[JSON] = []
    text = text_of(message.get("content"), NAME, "assistant")
    if text:
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": function.get("name", ""),
                "input": arguments(function.get("arguments")),
            }
        )
    return blocks


def convert_tool(tool: JSON) -> JSON:
    if tool.get("type") != "function":
        raise unsupported(NAME, "tools", f"tool type {tool.get('type')!r}")
    function = tool.get("function") or {}
    out: JSON = {
        "name": function.get("name", ""),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out


def convert_tool_choice(choice: Any, parallel: Any) -> JSON | None:
    result: JSON | None
    if choice is None:
        result = None if parallel is not False else {"type": "auto"}
    elif choice in ("auto", "none"):
        result = {"type": choice}
    elif choice == "required":
        result = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        result = {"type": "tool", "name": (choice.get("function") or {}).get("name", "")}
    else:
        raise unsupported(NAME, "tool_choice", f"value {choice!r}")
    if result is not None and parallel is False and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


class AnthropicStream:
    """Anthropic's stream events, as OpenAI chunks, one event at a time."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.writer = ChunkWriter(model, include_usage)
        self.decoder = SSEDecoder()
        self.tools: dict[int, int] = {}  # content block index -> tool call index
        self.input = 0
        self.cached = 0
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        return translate_events(self.decoder.feed(chunk), self.event)

    def event(self, event: JSON) -> bytes:
        kind = event.get("type")
        w = self.writer
        if kind == "message_start":
            message = event.get("message") or {}
            w.id = message.get("id") or w.id
            w.model = message.get("model") or w.model
            raw = message.get("usage") or {}
            self.cached = int(raw.get("cache_read_input_tokens") or 0)
            self.input = int(raw.get("input_tokens") or 0) + self.cached
            self.input += int(raw.get("cache_creation_input_tokens") or 0)
            return w.chunk({"role": "assistant", "content": ""})
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = len(self.tools)
                self.tools[event.get("index", 0)] = index
                call = tool_call(block, index)
                call["function"]["arguments"] = ""
                return w.chunk({"tool_calls": [call]})
            if block.get("type") == "text" and block.get("text"):
                return w.chunk({"content": block["text"]})
            return b""
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                return w.chunk({"content": delta.get("text", "")})
            if dtype == "thinking_delta":
                return w.chunk({"reasoning_content": delta.get("thinking", "")})
            if dtype == "input_json_delta":
                index = self.tools.get(event.get("index", 0), 0)
                fn = {"arguments": delta.get("partial_json", "")}
                return w.chunk({"tool_calls": [{"index": index, "function": fn}]})
            return b""
        if kind == "message_delta":
            raw = event.get("usage") or {}
            w.usage = usage(self.input, int(raw.get("output_tokens") or 0), self.cached)
            reason = (event.get("delta") or {}).get("stop_reason")
            return w.chunk({}, FINISH.get(reason or "", "stop")) if reason else b""
        if kind == "message_stop":
            self.done = True
            return w.end()
        if kind == "error":
            self.done = True
            error = event.get("error") or {}
            message = f"{error.get('type', 'error')}: {error.get('message', '')}"
            code = "overloaded" if error.get("type") == "overloaded_error" else "upstream_error"
            return w.error(NAME, message, code) + w.end()
        return b""

    def close(self) -> bytes:
        out = bytearray(translate_events(self.decoder.flush(), self.event))
        if not self.done:
            self.done = True
            out += self.writer.error(NAME, "the stream ended before message_stop", "stream_broken")
            out += self.writer.end()
        return bytes(out)
