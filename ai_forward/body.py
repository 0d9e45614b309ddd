"""Reading a request body for the rules that depend on it.

Model allowlists, per-model routing, token limits and pacing decide from the body.
Upstreams are often lenient (they ignore the content type, skip a byte order mark,
accept `NaN`), so a body the gateway cannot read must not slip past such a rule
unchecked. These functions read a body as JSON whatever its content type says,
except a multipart form, which is read as a form; callers refuse what they cannot read.
"""

from __future__ import annotations

from typing import Any

import orjson

from .errors import InvalidRequest

FORM_TYPE = b"multipart/form-data"
_BOM = b"\xef\xbb\xbf"
_MAX_PART_HEAD = 4096


class UnreadableBody(InvalidRequest):
    """A rule needs to read the body, and it is not a JSON object (or a readable form)."""

    code = "unreadable_body"


def parse_object(body: bytes) -> tuple[dict[str, Any] | None, str]:
    """`body` as a JSON object, else None and why not (in words a client can act on)."""
    if body.startswith(_BOM):
        return None, "it starts with a byte order mark; send UTF-8 JSON without one"
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        why = str(exc)
        if body.find(b"NaN") != -1 or body.find(b"Infinity") != -1:
            why += "; NaN and Infinity are not JSON numbers"
        return None, why
    if not isinstance(value, dict):
        return None, f"it is a JSON {type(value).__name__}, not an object"
    return value, ""


def may_be_json(body: bytes, content_type: bytes) -> bool:
    """Whether some parser could take `body` for JSON: it says so, or it starts like JSON.

    A body that does neither (an SDP offer, raw audio) is nobody's JSON, and rules that
    only estimate or route may let it pass unread.
    """
    if b"json" in content_type.lower():
        return True
    start = body[:64].removeprefix(_BOM).lstrip()
    return not start or start[:1] in b"{["


def is_form(content_type: bytes) -> bool:
    return content_type.lower().lstrip().startswith(FORM_TYPE)


def form_values(body: bytes, content_type: bytes, field: str) -> list[str] | None:
    """Every value of the form field `field` (usually none or one); None if the form
    cannot be read, or if a part that is not `field` might still be taken for it."""
    boundary = form_boundary(content_type)
    if boundary is None:
        return None
    delimiter = b"--" + boundary
    pieces = body.split(delimiter)
    if len(pieces) < 3 or not pieces[-1].startswith(b"--"):
        return None  # no part, or no closing delimiter
    wanted = field.lower()
    values: list[str] = []
    for piece in pieces[1:-1]:
        part = piece.removeprefix(b"\r\n").removeprefix(b"\n")
        head, separator, content = _split_part(part)
        if not separator or len(head) > _MAX_PART_HEAD:
            return None
        name = part_name(head)
        if name is None:
            return None
        if name.lower() == wanted:
            try:
                values.append(content.removesuffix(b"\n").removesuffix(b"\r").decode().strip())
            except UnicodeDecodeError:
                return None
        elif wanted.encode() in head.lower():
            return None  # e.g. a second name= parameter: a lenient parser might pick it
    return values


def _split_part(part: bytes) -> tuple[bytes, bytes, bytes]:
    crlf = part.find(b"\r\n\r\n")
    lf = part.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf <= lf + 1):
        return part[:crlf], b"\r\n\r\n", part[crlf + 4 :]
    return part.partition(b"\n\n")


def form_boundary(content_type: bytes) -> bytes | None:
    for param in content_type.split(b";")[1:]:
        key, _, value = param.strip().partition(b"=")
        if key.strip().lower() == b"boundary":
            value = value.strip().strip(b'"')
            return value or None
    return None


def part_name(head: bytes) -> str | None:
    """The `name` of a form part, from its Content-Disposition header."""
    for line in head.splitlines():
        key, _, value = line.partition(b":")
        if key.strip().lower() != b"content-disposition":
            continue
        for param in value.split(b";")[1:]:
            pkey, _, pvalue = param.strip().partition(b"=")
            if pkey.strip().lower() == b"name":
                return pvalue.strip().strip(b'"').decode("utf-8", "replace")
    return None
