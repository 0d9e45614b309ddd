"""The page shell (header, navigation, sign-out) and the sign-in page."""

from __future__ import annotations

from html import escape

BASE = "/admin/ui"
NAV = (
    ("overview", "Overview", BASE + "/"),
    ("users", "Users", BASE + "/users"),
    ("chats", "Chat log", BASE + "/chats"),
)


def page(title: str, body: str, *, current: str = "", csrf: str = "") -> str:
    links = "".join(
        f'<a href="{href}"{" aria-current=page" if key == current else ""}>{label}</a>'
        for key, label, href in NAV
    )
    header = ""
    if csrf:
        header = (
            f'<header><strong>ai-forward</strong><nav aria-label="Dashboard">{links}</nav>'
            f'<form method="post" action="{BASE}/logout">'
            f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
            f'<button type="submit">Sign out</button></form></header>'
        )
    return (
        "<!doctype html>"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="csrf" content="{escape(csrf)}">'
        f"<title>{escape(title)} · ai-forward</title>"
        f'<link rel="stylesheet" href="{BASE}/assets/app.css">'
        # Without an icon of its own, a browser asks for /favicon.ico: a forwarded request.
        f'<link rel="icon" href="{BASE}/assets/icon.svg" type="image/svg+xml">'
        f'<script src="{BASE}/assets/app.js" defer></script></head>'
        f"<body>{header}<main>{body}</main></body></html>"
    )


def sign_in(problem: str = "") -> str:
    alert = f'<p class="alert" role="alert">{escape(problem)}</p>' if problem else ""
    return page(
        "Sign in",
        f'<form class="signin" method="post" action="{BASE}/login">'
        "<h1>Sign in to ai-forward</h1>"
        '<label>Admin token (ADMIN_TOKEN)<input type="password" name="token" '
        'autocomplete="current-password" required autofocus></label>'
        f'{alert}<button class="primary" type="submit">Sign in</button></form>',
    )


def money(value: float) -> str:
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def count(value: int) -> str:
    return f"{value:,}"


def table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    """A table of already-escaped cells; `numeric` columns align right."""
    numeric = numeric or set()
    cls = [' class="num"' if i in numeric else "" for i in range(len(headers))]
    head = "".join(f'<th scope="col"{cls[i]}>{h}</th>' for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{cls[i]}>{cell}</td>" for i, cell in enumerate(row)) + "</tr>"
        for row in rows
    )
    if not rows:
        body = f'<tr><td colspan="{len(headers)}" class="muted">nothing yet</td></tr>'
    head = f"<thead><tr>{head}</tr></thead>"
    return f'<div class="scroll"><table>{head}<tbody>{body}</tbody></table></div>'
