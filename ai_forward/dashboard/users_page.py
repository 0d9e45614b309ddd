"""The users page: the list with its actions, the create form and the edit dialog.

Every change is a call of the page's script to the /admin API (see assets.py).
"""

from __future__ import annotations

from html import escape
from typing import Any

import orjson

from ..users.user import User
from .layout import money, table

_FIELDS = (
    ("rpm", "Requests per minute", "number", "global limit"),
    ("tpm", "Tokens per minute", "number", "global limit"),
    ("models", "Models (comma-separated, * allowed)", "text", "all"),
    ("routes", "Routes (comma-separated)", "text", "all"),
    ("expires_at", "Expires (2026-12-31 or ISO time)", "text", "never"),
    ("budget", "Budget (5/day, 200/month)", "text", "none"),
)


def fields(routes: tuple[str, ...]) -> str:
    out = []
    for name, label, kind, empty in _FIELDS:
        extra = ' min="1" step="1"' if kind == "number" else ""
        hint = f"{empty}: {', '.join(routes)}" if name == "routes" else empty
        out.append(
            f'<label>{label}<input name="{name}" type="{kind}"{extra} '
            f'placeholder="{escape(hint)}"></label>'
        )
    return "".join(out)


def users_page(users: list[User], spent: dict[str, float], routes: tuple[str, ...]) -> str:
    rows = []
    for user in users:
        public = user.public()
        edit = escape(orjson.dumps(public).decode())
        name = escape(user.name)
        rows.append(
            [
                f"<strong>{name}</strong><br><span class=muted>{escape(user.key_hint)}</span>",
                limits(public),
                escape(", ".join(user.models) or "all"),
                escape(", ".join(user.routes) or "all"),
                escape(public["expires_at"] or "never"),
                budget(user, spent.get(user.name)),
                '<div class="actions">'
                f'<button type="button" data-edit="{edit}" aria-label="Edit {name}">Edit</button>'
                f'<button type="button" data-reset="{name}" aria-label="New key for {name}">'
                "Reset key</button>"
                f'<button type="button" class="danger" data-delete="{name}" '
                f'aria-label="Delete {name}">Delete</button></div>',
            ]
        )
    headers = ["user", "limits", "models", "routes", "expires", "budget", ""]
    return (
        "<h1>Users</h1>"
        '<p id="list-alert" class="alert" role="alert"></p>'
        + table(headers, rows)
        + '<h2>New user</h2><form id="create-user" class="grid-form">'
        '<label>Name<input name="name" required pattern="[A-Za-z0-9][A-Za-z0-9_.@\\-]{0,63}" '
        'autocomplete="off"></label>'
        + fields(routes)
        + '<button class="primary" type="submit">Create user</button>'
        '<p class="alert" role="alert"></p></form>' + dialogs(routes)
    )


def limits(public: dict[str, Any]) -> str:
    rpm = public["rpm"] or "global"
    tpm = public["tpm"] or "global"
    return f"{rpm} rpm<br>{tpm} tpm"


def budget(user: User, spent: float | None) -> str:
    if user.budget is None:
        return '<span class="muted">none</span>'
    used = f"<br><span class=muted>{money(spent)} spent</span>" if spent is not None else ""
    return escape(str(user.budget)) + used


def dialogs(routes: tuple[str, ...]) -> str:
    return (
        '<dialog id="key-dialog" aria-labelledby="key-title">'
        '<h2 id="key-title">Key of <span data-name></span></h2>'
        "<p>Copy it now: it is shown this once and cannot be read again.</p>"
        '<code class="key"></code><p><button type="button" class="primary" data-close>'
        "Done</button></p></dialog>"
        '<dialog id="edit-dialog" aria-labelledby="edit-title">'
        '<h2 id="edit-title">Edit <span data-name></span></h2>'
        '<form class="grid-form" method="dialog">'
        + fields(routes)
        + '<button class="primary" type="submit">Save</button>'
        '<button type="button" data-cancel>Cancel</button>'
        '<p class="alert" role="alert"></p></form></dialog>'
    )
