"""The chat-log pages: a search form with its results, and one exchange."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlencode

import orjson

from .chats import Found, Query
from .layout import BASE, table


def chats_page(query: Query, found: list[Found], enabled: bool, raw: dict[str, str]) -> str:
    inputs = "".join(
        f'<label>{label}<input name="{name}" value="{escape(raw.get(name, ""))}" '
        f'placeholder="{hint}"></label>'
        for name, label, hint in (
            ("since", "From (UTC)", "2026-12-01 or 2h"),
            ("until", "To (UTC)", "2026-12-02T12:00"),
            ("user", "User", "any"),
            ("model", "Model", "any"),
            ("q", "Text", "words in messages or reply"),
        )
    )
    note = (
        ""
        if enabled
        else ('<p class="muted">LOG_CHAT is off: set LOG_CHAT=true to record exchanges here.</p>')
    )
    rows = [
        [
            escape(str(f.record.get("time", ""))[:19].replace("T", " ")),
            escape(str(f.record.get("user") or "-")),
            escape(str(f.record.get("model") or "-")),
            escape(str(f.record.get("status", ""))),
            f'<a href="{BASE}/chats/one?{urlencode({"f": f.file, "o": f.offset})}">'
            f"{escape(preview(f.record)) or '(open)'}</a>",
        ]
        for f in found
    ]
    return (
        "<h1>Chat log</h1>"
        + note
        + f'<form class="grid-form" method="get" action="{BASE}/chats" role="search">'
        + inputs
        + '<button class="primary" type="submit">Search</button></form>'
        + f'<p class="muted">{len(found)} exchanges, newest first.</p>'
        + table(["time (UTC)", "user", "model", "status", "exchange"], rows, numeric={3})
    )


def preview(record: dict[str, Any]) -> str:
    """The last thing the client said, in a line."""
    messages = record.get("messages")
    text: Any = None
    if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
        text = messages[-1].get("content")
    else:
        text = record.get("prompt") or record.get("input")
    if not isinstance(text, str):
        text = orjson.dumps(text).decode() if text is not None else ""
    return " ".join(text.split())[:120]


def exchange_page(record: dict[str, Any]) -> str:
    facts = [
        [escape(k), escape(str(record.get(k)))]
        for k in ("time", "user", "model", "route", "path", "status", "duration_ms", "error")
    ]
    sent = {k: record[k] for k in ("messages", "prompt", "input", "instructions") if k in record}
    return (
        f'<p><a href="{BASE}/chats">← back to the chat log</a></p><h1>One exchange</h1>'
        + table(["field", "value"], facts)
        + "<h2>Request</h2><pre>"
        + escape(pretty({**sent, "params": record.get("params")}))
        + "</pre><h2>Reply</h2><pre>"
        + escape(pretty(record.get("reply")))
        + "</pre><h2>Usage</h2><pre>"
        + escape(pretty(record.get("usage")))
        + "</pre>"
    )


def pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
