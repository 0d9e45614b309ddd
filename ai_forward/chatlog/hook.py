"""Chat records: what each exchange said, handed to a writer thread off the event loop.

`ChatLogHook` runs last. Its `before` asks for the reply to be observed (and for
usage in streams); its `after` builds one record from the request and the reply
and queues it; a streamed reply goes as the bytes that came, and the writer
thread reassembles it. Building a record copies no message text: the writer
thread serialises the very objects the request was parsed into.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from ..exchange import MODEL_OVERRIDE, Exchange, StateKey
from ..observe import stream_usage
from ..pipeline import NOTHING, Contribution, Probe, Shared
from ..settings import Settings
from .reassemble import add_reply
from .writer import ChatLogWriter

# Path endings logged, in match order (chat before the plain completions it ends with).
KINDS = (
    ("/chat/completions", "chat"),
    ("/completions", "completion"),
    ("/embeddings", "embedding"),
    ("/responses", "response"),
)
# Request fields that hold what was said; everything else is a parameter.
CONTENT_FIELDS = ("messages", "prompt", "input", "instructions")
# Parameter names whose values are credentials, wherever they are nested.
SECRET_NAMES = frozenset(
    {"authorization", "api_key", "api-key", "apikey", "x-api-key", "key", "token", "password"}
)
MIN_SECRET = 6
# What the client asked, when: kept from `before` for the record `after` builds.
_REQUEST = StateKey[tuple[str, dict[str, Any] | None, float]]("chat log request")


class ChatLogHook:
    """Records chat, completion, embedding and responses exchanges."""

    def __init__(self, writer: ChatLogWriter) -> None:
        self.writer = writer

    async def before(self, ex: Exchange) -> None:
        kind = exchange_kind(ex)
        if kind is None:
            return
        # The body as the client sent it, before usage is asked for on its behalf.
        ex.set(_REQUEST, (kind, ex.json(), time.time() - (time.monotonic() - ex.started)))
        ex.observe = True
        stream_usage.ask_for_usage(ex)

    async def after(self, ex: Exchange) -> None:
        saved = ex.get(_REQUEST)
        if saved is None:
            return
        kind, body, started = saved
        record = build_record(ex, kind, body, started)
        secrets = tuple(
            s for s in (ex.key.value if ex.key else None, ex.real_key) if s and len(s) >= MIN_SECRET
        )
        self.writer.submit(ex.route.name, record, secrets, ex.outcome.stream)


def exchange_kind(ex: Exchange) -> str | None:
    if ex.method != "POST":
        return None
    path = ex.upstream_path.rstrip("/")
    for ending, kind in KINDS:
        if path.endswith(ending):
            return kind
    return None


def build_record(
    ex: Exchange, kind: str, body: dict[str, Any] | None, started: float
) -> dict[str, Any]:
    """One exchange as a JSON-ready dict (see README, "Chat logs", for the fields)."""
    outcome = ex.outcome
    body = body or {}
    params: dict[str, Any] = {}
    said: dict[str, Any] = {}
    for name, value in body.items():
        if name in CONTENT_FIELDS:
            said[name] = value
        elif name.lower() in SECRET_NAMES:
            params[name] = "[redacted]"
        else:
            params[name] = scrub(value) if isinstance(value, dict) else value
    model = body.get("model")
    record: dict[str, Any] = {
        "time": datetime.fromtimestamp(started, UTC).isoformat(timespec="microseconds"),
        "route": ex.route.name,
        "path": ex.path,
        "kind": kind,
        "client_ip": ex.client_ip,
        "key": ex.key.fingerprint if ex.key else None,
        "user": ex.principal.name if ex.principal else None,
        # The model that answered: a fallback's when the one asked for failed.
        "model": ex.get(MODEL_OVERRIDE) or (model if isinstance(model, str) else None),
        "params": params,
    }
    if said:
        for name in CONTENT_FIELDS:  # in this order, whatever the body's
            if name in said:
                record[name] = said[name]
    record["reply"] = None
    record["usage"] = outcome.usage
    record["status"] = outcome.status
    record["complete"] = outcome.complete and outcome.error is None
    record["error"] = outcome.error
    record["duration_ms"] = round((outcome.ended - ex.started) * 1000, 1)
    record["attempts"] = outcome.attempts
    if outcome.cache == "hit":
        record["cache"] = "hit"
    # A stream's reply is reassembled by the writer thread (see reassemble.py).
    return record if outcome.stream is not None else add_reply(record, outcome.reply)


def scrub(value: Any) -> Any:
    """`value` with credential-named entries of nested dicts replaced (copies only dicts)."""
    if isinstance(value, dict):
        return {
            k: "[redacted]" if str(k).lower() in SECRET_NAMES else scrub(v)
            for k, v in value.items()
        }
    return value


def install(settings: Settings, shared: Shared) -> Contribution:
    """The chat log hook and its writer, when LOG_CHAT is on."""
    if not settings.chatlog.enabled:
        return NOTHING
    writer = ChatLogWriter(settings.chatlog, shared.redactor)
    shared.signals.reading("chatlog_queue_depth", lambda: writer.depth)
    shared.signals.reading("chatlog_dropped_total", lambda: writer.dropped)
    return Contribution(
        hooks=(ChatLogHook(writer),),
        resources=(writer,),
        probes=(Probe("chat log writer", writer.health),),
    )
