"""Google Gemini `generateContent` / `streamGenerateContent?alt=sse` behind OpenAI chat."""

from __future__ import annotations

import mimetypes
from typing import Any
from urllib.parse import quote

import orjson

from ..sse import SSEDecoder
from .base import (
    IGNORED,
    JSON,
    ChunkWriter,
    Endpoint,
    ProviderRequest,
    arguments,
    check_params,
    completion,
    data_url,
    loads_object,
    stop_list,
    text_of,
    translate_events,
    unsupported,
    usage,
)

NAME = "gemini"
KNOWN = (
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
    "stop", "stream", "tools", "tool_choice", "response_format", "n", "presence_penalty",
    "frequency_penalty", "seed", *IGNORED,
)  # fmt: skip
NEUTRAL: JSON = {"logprobs": False, "parallel_tool_calls": True, "modalities": ["text"]}
BLOCKED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
CONFIG = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "n": "candidateCount",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "seed": "seed",
}


class Gemini:
    name: str = NAME
    paths: tuple[str, ...] = ("/v1/chat/completions", "/chat/completions")

    def build(self, body: JSON, endpoint: Endpoint) -> ProviderRequest:
        check_params(NAME, body, KNOWN, NEUTRAL)
        system, contents = convert_messages(body.get("messages"))
        out: JSON = {"contents": contents}
        if system:
            out["systemInstruction"] = {"parts": [{"text": t} for t in system]}
        config: JSON = {k: body[o] for o, k in CONFIG.items() if body.get(o) is not None}
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if max_tokens:
            config["maxOutputTokens"] = max_tokens
        if body.get("stop") is not None:
            config["stopSequences"] = stop_list(body["stop"])
        config.update(response_format(body.get("response_format")))
        if config:
            out["generationConfig"] = config
        if body.get("tools"):
            out["tools"] = [{"functionDeclarations": [declaration(t) for t in body["tools"]]}]
        if body.get("tool_choice") is not None:
            out["toolConfig"] = {"functionCallingConfig": tool_config(body["tool_choice"])}
        model = quote(str(body["model"]).removeprefix("models/"), safe="-._")
        stream = bool(body.get("stream"))
        action = ":streamGenerateContent" if stream else ":generateContent"
        headers = [(b"content-type", b"application/json"), (b"accept-encoding", b"identity")]
        if endpoint.key:
            headers.append((b"x-goog-api-key", endpoint.key.encode()))
        url = endpoint.origin.url(f"/models/{model}{action}", "alt=sse" if stream else "")
        return ProviderRequest(url, headers, orjson.dumps(out))

    def translate_reply(self, body: bytes, model: str) -> bytes:
        reply = orjson.loads(body)
        choices = [choice(c, i) for i, c in enumerate(reply.get("candidates") or ())]
        if not choices:  # the prompt itself was blocked
            message = {"role": "assistant", "content": None}
            choices = [{"index": 0, "message": message, "finish_reason": "content_filter"}]
        return orjson.dumps(
            completion(
                reply.get("responseId") or "chatcmpl-gemini",
                reply.get("modelVersion") or model,
                choices,
                usage_of(reply),
            )
        )

    def stream(self, model: str, include_usage: bool) -> GeminiStream:
        return GeminiStream(model, include_usage)

    def error_message(self, body: bytes) -> str:
        error = (loads_object(body) or {}).get("error")
        if isinstance(error, dict):
            return f"{error.get('status', 'error')}: {error.get('message', '')}"
        return body[:500].decode("utf-8", "replace") or "no error message"


def usage_of(reply: JSON) -> JSON | None:
    raw = reply.get("usageMetadata")
    if not isinstance(raw, dict):
        return None
    thoughts = int(raw.get("thoughtsTokenCount") or 0)
    return usage(
        int(raw.get("promptTokenCount") or 0),
        int(raw.get("candidatesTokenCount") or 0) + thoughts,
        int(raw.get("cachedContentTokenCount") or 0),
        thoughts,
    )


def finish(reason: str | None, has_calls: bool) -> str | None:
    if not reason or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if reason == "MAX_TOKENS":
        return "length"
    if reason in BLOCKED:
        return "content_filter"
    return "tool_calls" if has_calls else "stop"


def parts_delta(parts: Any, first_call: int) -> JSON:
    """Text, thoughts and function calls of `parts`, as an OpenAI message/delta."""
    text: list[str] = []
    thoughts: list[str] = []
    calls: list[JSON] = []
    for part in parts or ():
        if "functionCall" in part:
            call = part["functionCall"] or {}
            index = first_call + len(calls)
            calls.append(
                {
                    "index": index,
                    "id": call.get("id") or f"call_{index}",
                    "type": "function",
                    "function": {
                        "name": call.get("name", ""),
                        "arguments": orjson.dumps(call.get("args") or {}).decode(),
                    },
                }
            )
        elif part.get("thought"):
            thoughts.append(part.get("text", ""))
        elif "text" in part:
            text.append(part["text"])
    delta: JSON = {}
    if text:
        delta["content"] = "".join(text)
    if thoughts:
        delta["reasoning_content"] = "".join(thoughts)
    if calls:
        delta["tool_calls"] = calls
    return delta


def choice(candidate: JSON, position: int) -> JSON:
    message = parts_delta((candidate.get("content") or {}).get("parts"), 0)
    calls = message.get("tool_calls")
    if calls:
        message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
    message = {"role": "assistant", "content": message.pop("content", None), **message}
    return {
        "index": candidate.get("index", position),
        "message": message,
        "finish_reason": finish(candidate.get("finishReason"), bool(calls)) or "stop",
        "logprobs": None,
    }


def convert_messages(raw: Any) -> tuple[list[str], list[JSON]]:
    if not isinstance(raw, list) or not raw:
        raise unsupported(NAME, "messages", "a non-empty list of messages is required")
    system: list[str] = []
    contents: list[JSON] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, for the tool results
    for message in raw:
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("system", "developer"):
            system.append(text_of(message.get("content"), NAME, role))
            continue
        if role == "user":
            parts = user_parts(message.get("content"))
        elif role == "assistant":
            parts = []
            text = text_of(message.get("content"), NAME, "assistant")
            if text:
                parts.append({"text": text})
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                names[call.get("id", "")] = function.get("name", "")
                args = arguments(function.get("arguments"))
                parts.append({"functionCall": {"name": function.get("name", ""), "args": args}})
            role = "model"
        elif role == "tool":
            content = text_of(message.get("content"), NAME, "tool")
            result = loads_object(content.encode()) or {"content": content}
            name = names.get(message.get("tool_call_id", ""), message.get("name", ""))
            parts = [{"functionResponse": {"name": name, "response": result}}]
            role = "user"
        else:
            raise unsupported(NAME, "messages", f"role {role!r}")
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return system, contents


def user_parts(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[JSON] = []
    for part in content or ():
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url") or {}
            url = image.get("url", "") if isinstance(image, dict) else str(image)
            inline = data_url(url)
            if inline:
                parts.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}})
            else:
                mime = mimetypes.guess_type(url.split("?")[0])[0] or "image/jpeg"
                parts.append({"fileData": {"mimeType": mime, "fileUri": url}})
        else:
            raise unsupported(NAME, "messages", f"{kind} content")
    return parts


def response_format(value: Any) -> JSON:
    if not isinstance(value, dict) or value.get("type") in (None, "text"):
        return {}
    if value["type"] == "json_object":
        return {"responseMimeType": "application/json"}
    if value["type"] == "json_schema":
        schema = (value.get("json_schema") or {}).get("schema") or {}
        return {"responseMimeType": "application/json", "responseJsonSchema": schema}
    raise unsupported(NAME, "response_format", f"type {value['type']!r}")


def declaration(tool: JSON) -> JSON:
    if tool.get("type") != "function":
        raise unsupported(NAME, "tools", f"tool type {tool.get('type')!r}")
    function = tool.get("function") or {}
    out: JSON = {"name": function.get("name", "")}
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("parameters"):
        out["parameters"] = function["parameters"]
    return out


def tool_config(choice: Any) -> JSON:
    modes = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
    if isinstance(choice, str) and choice in modes:
        return {"mode": modes[choice]}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name", "")
        return {"mode": "ANY", "allowedFunctionNames": [name]}
    raise unsupported(NAME, "tool_choice", f"value {choice!r}")


class GeminiStream:
    """Gemini's SSE stream (one GenerateContentResponse per event) as OpenAI chunks."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.writer = ChunkWriter(model, include_usage)
        self.decoder = SSEDecoder()
        self.started = False
        self.calls: dict[int, int] = {}  # candidate index -> tool calls so far
        self.failed = False

    def feed(self, chunk: bytes) -> bytes:
        return translate_events(self.decoder.feed(chunk), self.event)

    def event(self, event: JSON) -> bytes:
        w = self.writer
        if isinstance(event.get("error"), dict):
            self.failed = True
            error = event["error"]
            return w.error(NAME, f"{error.get('status', 'error')}: {error.get('message', '')}")
        out = bytearray()
        if not self.started:
            self.started = True
            w.id = event.get("responseId") or w.id
            w.model = event.get("modelVersion") or w.model
            out += w.chunk({"role": "assistant", "content": ""})
        w.usage = usage_of(event) or w.usage
        for position, candidate in enumerate(event.get("candidates") or ()):
            index = candidate.get("index", position)
            before = self.calls.get(index, 0)
            delta = parts_delta((candidate.get("content") or {}).get("parts"), before)
            self.calls[index] = before + len(delta.get("tool_calls", ()))
            reason = finish(candidate.get("finishReason"), self.calls[index] > 0)
            if delta:
                out += w.chunk(delta, index=index)
            if reason:
                out += w.chunk({}, reason, index=index)
        feedback = event.get("promptFeedback") or {}
        if feedback.get("blockReason") and not event.get("candidates"):
            out += w.chunk({}, "content_filter")
        return bytes(out)

    def close(self) -> bytes:
        out = bytearray(translate_events(self.decoder.flush(), self.event))
        return bytes(out + self.writer.end())
