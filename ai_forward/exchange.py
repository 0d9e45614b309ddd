"""One request's passage through the gateway, and the hooks that act on it.

Hooks run in a fixed order written down once in `app.py`: every `before` in
order, then the upstream call, then every `after` in reverse order (only for
hooks whose `before` completed). A `before` may raise a GatewayError to answer
the client itself, or set `ex.answer` to answer it in place of the upstream (a
cache hit): the upstream is then not called, and every `after` still runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import orjson

from .body import UnreadableBody, is_form, may_be_json, parse_object
from .errors import GatewayError
from .keys import Credential, KeyKind, PresentedKey
from .settings import Route
from .types import Headers, Scope

BodyFilter = Callable[[AsyncIterator[bytes]], AsyncIterator[bytes]]
T = TypeVar("T")
_UNPARSED: Any = object()
# The first `"model": "..."` in a body: what the logs name, without parsing the body.
_MODEL_HINT = re.compile(rb'"model"\s*:\s*"((?:[^"\\\n]|\\.){1,256})"')


class StateKey(Generic[T]):
    """A typed key for what a feature keeps on an exchange (`ex.get`/`ex.set`).

    Each feature makes its own keys; two keys never clash, whatever their names.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"StateKey({self.name!r})"


# Read by the planners: the model an attempt asks for in place of the body's (a fallback).
MODEL_OVERRIDE = StateKey[str]("model override")
# Set when fallbacks are configured: a model's fallbacks that this exchange may use, in order.
FALLBACKS_OF = StateKey[Callable[[str], tuple[str, ...]]]("fallbacks of a model")


@dataclass(slots=True)
class Outcome:
    """How the exchange ended; filled in by the relay, read by `after` hooks."""

    status: int = 0
    complete: bool = False
    error: str | None = None
    reply: dict[str, Any] | None = None
    streamed_chars: int = 0  # generated text relayed, when only usage was observed
    stream: bytes | None = None  # a stream read whole, as it came (reassembled off the loop)
    attempts: int = 1
    retried: list[str] = field(default_factory=list)  # why each retry was made
    cache: str | None = None  # hit, miss or bypass, when the response cache judged it
    ended: float = 0.0
    upstream_wait: float = 0.0  # seconds spent waiting for upstream answers, all attempts
    first_byte: float = 0.0  # seconds the last attempt waited for the upstream's headers
    relayed: float = 0.0  # when the response began to go to the client (monotonic)
    refusal: GatewayError | None = None  # the gateway's own answer, when it gave one

    @property
    def upstream_seconds(self) -> float:
        """Time spent on the upstream: waiting for its answers, then relaying its body."""
        body = self.ended - self.relayed if self.relayed else 0.0
        return self.upstream_wait + max(body, 0.0)

    @property
    def usage(self) -> dict[str, Any] | None:
        usage = self.reply.get("usage") if self.reply else None
        return usage if isinstance(usage, dict) else None


@dataclass(frozen=True, slots=True)
class LocalAnswer:
    """A successful answer a hook gives in place of the upstream's, built ahead of time.

    Sent once every `before` ran, as the upstream's would be: the hooks' response
    headers and the request id are added, body filters, taps and observers see `body`.
    `headers` are the answer's own (content type, and length when `body` is whole).
    """

    status: int
    headers: Headers
    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller identified by an issued key, with its own limits and allowances."""

    name: str
    rpm: int | None = None
    tpm: int | None = None
    models: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    budget: tuple[float, str] | None = None  # US dollars per "day" or "month" (UTC)


# The level of the client's key (openai-forward's levels, see compat/): which real keys,
# models and rate limits apply to it. Unset: level 0.
KEY_LEVEL: StateKey[int] = StateKey("key level")


@dataclass(slots=True)
class Exchange:
    """The client's request as read once, plus what hooks decide about it."""

    scope: Scope
    route: Route
    method: str
    path: str  # canonical (see target.py): what every rule matches on
    upstream_path: str  # canonical, after the route prefix
    raw_upstream_path: str  # as the client sent it, after the route prefix: what goes upstream
    query: bytes
    headers: Headers
    body: bytes
    client_ip: str
    started: float = field(default_factory=time.monotonic)
    request_id: str = ""  # ours, or the upstream's once it answered with one
    key: PresentedKey | None = None
    key_kind: KeyKind = KeyKind.NONE
    credential: Credential | None = field(default=None, repr=False)
    principal: Principal | None = None
    observe: bool = False  # keep the whole reply: outcome.reply, or outcome.stream (chat log)
    observe_usage: bool = False  # only its usage (limits, accounting): much cheaper
    observe_tokens: bool = False  # only the token counts it reports (metrics): cheapest
    response_started: bool = False
    response_headers: Headers = field(default_factory=list)
    body_filters: list[BodyFilter] = field(default_factory=list)
    # See each chunk of the upstream's answer as it arrives, before any filter; unlike a
    # filter, a tap changes nothing, so the answer keeps its Content-Length.
    body_taps: list[Callable[[bytes], None]] = field(default_factory=list)
    outcome: Outcome = field(default_factory=Outcome)
    answer: LocalAnswer | None = None  # set by a `before`: the upstream is not called
    _state: dict[StateKey[Any], Any] = field(default_factory=dict, repr=False)
    _json: Any = _UNPARSED
    _form: bool | None = None
    _hint: Any = _UNPARSED  # model_hint, once asked (the access log and the metrics both ask)

    def get(self, key: StateKey[T]) -> T | None:
        """What a feature stored under `key` for this exchange, or None."""
        value: T | None = self._state.get(key)
        return value

    def set(self, key: StateKey[T], value: T) -> None:
        self._state[key] = value

    @property
    def real_key(self) -> str | None:
        """The real key going upstream in place of the client's, if any."""
        return self.credential.key if self.credential is not None else None

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def json(self) -> dict[str, Any] | None:
        """The body as a JSON object, parsed at most once; None if it is not one.

        Read whatever the content type says (lenient upstreams do the same), except a
        multipart form. For a decision, use `read_json`, which refuses what it can't read.
        """
        if self._json is _UNPARSED:
            self._json = None
            if self.body and not self.is_form:
                self._json = parse_object(self.body)[0]
        result: dict[str, Any] | None = self._json
        return result

    def read_json(self, rule: str, *, strict: bool = False) -> dict[str, Any] | None:
        """The body as a JSON object for `rule`, which decides from it.

        None when there is no body, or it is a multipart form (read with `body.form_values`),
        or, unless `strict`, it is plainly not JSON (nor labelled so). Any other body that
        is not a JSON object is refused with a 400 saying why, so that a lenient upstream
        never reads what `rule` did not check.
        """
        body = self.json()
        if body is None and self.body and not self.is_form:
            if not strict and not may_be_json(self.body, self.header(b"content-type") or b""):
                return None
            why = parse_object(self.body)[1]
            raise UnreadableBody(
                f"the body is not a readable JSON object ({why}); {rule} needs a readable body"
            )
        return body

    @property
    def is_form(self) -> bool:
        form = self._form
        if form is None:
            form = self._form = is_form(self.header(b"content-type") or b"")
        return form

    def replace_json(self, body: dict[str, Any]) -> None:
        """Change the body sent upstream (e.g. to ask for usage in a stream)."""
        self._json = body
        self._hint = _UNPARSED
        self.body = orjson.dumps(body)

    @property
    def model(self) -> str | None:
        body = self.json()
        model = body.get("model") if body else None
        return model if isinstance(model, str) else None

    @property
    def model_hint(self) -> str | None:
        """The model for logs and metrics: the body's `model` if something parsed the body,
        else the first `"model": "..."` found in it (never decide anything from this)."""
        hint: str | None
        if self._json is not _UNPARSED:
            return self.model
        if self._hint is not _UNPARSED:
            hint = self._hint
            return hint
        hint = self._hint = find_model(self.body)
        return hint

    @property
    def client_id(self) -> str:
        """Who the client is for limits and logs: a key fingerprint, else its IP."""
        return f"key:{self.key.fingerprint}" if self.key else f"ip:{self.client_ip}"


def find_model(body: bytes) -> str | None:
    """The first `"model": "..."` of a body, without parsing it."""
    at = body.find(b'"model"') if body else -1
    if at == -1:
        return None
    # The usual form, `"model":"name"` with a plain name, read without a regex.
    start = at + 9
    if body[at + 7 : start] == b':"':
        end = body.find(b'"', start)
        plain = body.find(b"\\", start, end) == -1 and body.find(b"\n", start, end) == -1
        if 0 < end - start <= 256 and plain:
            try:
                return body[start:end].decode()
            except UnicodeDecodeError:
                return None
    found = _MODEL_HINT.search(body)
    if found is None:
        return None
    try:
        value = orjson.loads(b'"' + found.group(1) + b'"')
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, str) else None


class Hook(Protocol):
    """A step around the upstream call."""

    async def before(self, ex: Exchange) -> None: ...

    async def after(self, ex: Exchange) -> None: ...


class BeforeOnly:
    """The base of a hook with nothing to do after the upstream call: the forwarder
    never calls its `after`."""

    async def after(self, ex: Exchange) -> None:
        return None
