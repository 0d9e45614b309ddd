"""openai-forward's chat logs (0.7/0.8), read into this gateway's record shape.

openai-forward writes `Log/<route>/chat/chat.log` (rotated files: `chat.<date>.log`), one
Python dict literal a line: first the request, when it arrives

    {'messages': [...], 'model': ..., 'stream': ..., 'ip': ..., 'uid': ..., 'datetime': ...}

(before 0.7 the address was under `forwarded-for`), then the answer, when it is complete

    {'assistant': 'text or a list of tool calls', 'is_tool_calls': False, 'uid': ...}

The two are joined by `uid`, across files too (a rotation may fall between them). Its
`datetime` is the local time of the machine that wrote it, without an offset; it is read
as the local time of the machine that converts (set `TZ` to read it otherwise).
"""

from __future__ import annotations

import ast
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

# Request fields that describe the exchange rather than its parameters.
_NOT_PARAMS = frozenset({"messages", "ip", "forwarded-for", "uid", "datetime", "caching"})


def is_their_file(path: Path) -> bool:
    """A chat log file as openai-forward names it (not its completion or embedding logs)."""
    return path.suffix == ".log" and path.name.startswith("chat")


def route_of(path: Path) -> str:
    """The route name: the folder above `chat/` (openai-forward's default route: `openai`)."""
    return path.parent.parent.name if path.parent.name == "chat" else "openai"


def parse_line(line: bytes) -> Any:
    """A line as a value: JSON, or else a Python literal as openai-forward writes it.

    Raises ValueError when it is neither.
    """
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        pass
    try:
        # literal_eval evaluates literals only: no names, calls or attributes.
        return ast.literal_eval(line.decode("utf-8", "replace").strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ValueError("neither JSON nor a Python literal") from None


def is_request(value: Any) -> bool:
    return isinstance(value, dict) and "uid" in value and "messages" in value


def is_answer(value: Any) -> bool:
    return isinstance(value, dict) and "uid" in value and "assistant" in value


def local_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
    return moment.astimezone() if moment.tzinfo is None else moment


class Pairs:
    """Requests waiting for their answers; `record` is called as each pair completes."""

    def __init__(self) -> None:
        self.waiting: dict[str, tuple[str, datetime, dict[str, Any]]] = {}
        self.orphans = 0

    def request(self, value: dict[str, Any], route: str) -> str | None:
        """Hold a request; the reason it cannot be used, if so."""
        at = local_time(value.get("datetime"))
        if at is None:
            return "openai-forward request without a readable datetime"
        self.waiting[str(value["uid"])] = (route, at, value)
        return None

    def answer(self, value: dict[str, Any]) -> dict[str, Any] | None:
        """The finished record for an answer, or None when its request was never seen."""
        held = self.waiting.pop(str(value["uid"]), None)
        if held is None:
            self.orphans += 1
            return None
        route, at, request = held
        return record(route, at, request, value)

    def unanswered(self) -> list[dict[str, Any]]:
        """Requests whose answer never came (an error upstream, a cut stream)."""
        done = [record(route, at, req, None) for route, at, req in self.waiting.values()]
        self.waiting.clear()
        return done


def record(
    route: str, at: datetime, request: dict[str, Any], answer: dict[str, Any] | None
) -> dict[str, Any]:
    """One exchange in this gateway's record shape, marked with where it came from."""
    model = request.get("model")
    return {
        "time": at.isoformat(),
        "route": route,
        "path": None,
        "kind": "chat",
        "client_ip": request.get("ip") or request.get("forwarded-for"),
        "key": None,
        "user": request.get("user"),
        "model": model,
        "params": {k: v for k, v in request.items() if k not in _NOT_PARAMS and v is not None},
        "messages": request.get("messages"),
        "reply": None if answer is None else reply(model, answer),
        "usage": None,
        "status": None if answer is None else 200,
        "complete": answer is not None,
        "error": None,
        "duration_ms": None,
        "attempts": None,
        "source": "openai-forward",
        "uid": request.get("uid"),
        "_at": at,
    }


def reply(model: Any, answer: dict[str, Any]) -> dict[str, Any]:
    said = answer.get("assistant")
    message: dict[str, Any] = {"role": "assistant"}
    if answer.get("is_tool_calls") or isinstance(said, list):
        message.update(content=None, tool_calls=said)
    else:
        message["content"] = said
    choice = {"index": 0, "finish_reason": None, "message": message}
    return {"object": "chat.completion", "model": model, "choices": [choice]}
