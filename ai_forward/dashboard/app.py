"""The dashboard's ASGI app, mounted at /admin/ui when ADMIN_TOKEN is set.

    GET  /admin/ui/            overview          GET  /admin/ui/users       users
    GET  /admin/ui/chats       chat-log search   GET  /admin/ui/chats/one   one exchange
    POST /admin/ui/login       sign in (form)    POST /admin/ui/logout      sign out (form)

Without a valid session cookie every page is the sign-in page (401) and shows no data.
Reads happen here, on the server; every change goes through the /admin API from the
page's script, authorised by the cookie plus its CSRF token (see users/session.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from ..budgets.budget import Budget
from ..chatlog.convert import ConvertError, parse_time
from ..clientip import listed, parse_ip
from ..env import IPNetwork
from ..types import Receive, Scope, Send
from ..users import accounts
from ..users.report import usage_report
from ..users.session import AdminSessions, cookie, set_cookie
from ..users.store import UserStore
from . import assets, chatlog_page, chats, layout, overview, users_page
from .activity import Activity

MAX_FORM = 4096
_SECURITY = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # "no-referrer" makes the Origin of a form null
    "cache-control": "no-store",
    "x-frame-options": "DENY",
}
_ASSETS = {
    "app.css": (assets.CSS, "text/css"),
    "app.js": (assets.JS, "text/javascript"),
    "icon.svg": (assets.ICON, "image/svg+xml"),
}


class Dashboard:
    def __init__(
        self,
        sessions: AdminSessions,
        store: UserStore,
        activity: Activity,
        routes: tuple[str, ...],
        chat_root: Path,
        chat_enabled: bool,
        trusted_proxies: Sequence[IPNetwork] = (),
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.activity = activity
        self.routes = routes
        self.chat_root = chat_root
        self.chat_enabled = chat_enabled
        self.trusted_proxies = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self.respond(request)
        for name, value in _SECURITY.items():
            response.headers.setdefault(name, value)
        await response(scope, receive, send)

    async def respond(self, request: Request) -> Response:
        path = request.url.path.removeprefix(layout.BASE) or "/"
        method = request.method
        if path.startswith("/assets/") and method == "GET":
            found = _ASSETS.get(path.removeprefix("/assets/"))
            if found is None:
                return html(layout.page("Not found", "<h1>Not found</h1>"), 404)
            text, kind = found
            return Response(text, media_type=kind, headers={"cache-control": "no-cache"})
        if method == "POST" and path == "/login":
            return await self.login(request)
        session = cookie(request.scope["headers"])
        if not self.sessions.valid(session):
            return html(layout.sign_in(), 401)
        assert session is not None
        if method == "POST" and path == "/logout":
            return await self.logout(request, session)
        if method != "GET":
            return html(layout.page("Not allowed", "<h1>Not allowed</h1>"), 405)
        self.activity.watch()
        csrf = self.sessions.csrf(session)
        if path == "/":
            body, current = overview.overview(await self.report(), self.activity), "overview"
        elif path == "/users":
            body, current = await self.users(), "users"
        elif path == "/chats":
            body, current = await self.chat_search(request), "chats"
        elif path == "/chats/one":
            body, current = await self.chat_one(request), "chats"
        else:
            return html(layout.page("Not found", "<h1>Not found</h1>", csrf=csrf), 404)
        return html(layout.page(current.capitalize(), body, current=current, csrf=csrf))

    async def login(self, request: Request) -> Response:
        if not same_origin(request):
            return html(layout.sign_in("Sign in from this gateway's own page."), 403)
        form = await read_form(request)
        if not self.sessions.token_matches(form.get("token", "")):
            return html(layout.sign_in("Wrong admin token: use the gateway's ADMIN_TOKEN."), 401)
        secure = over_https(request, self.trusted_proxies)
        response = Response(status_code=303, headers={"location": layout.BASE + "/"})
        response.raw_headers.append(
            (b"set-cookie", set_cookie(self.sessions.issue(), secure=secure))
        )
        self.activity.watch()
        return response

    async def logout(self, request: Request, session: str) -> Response:
        form = await read_form(request)
        if not same_origin(request) or form.get("csrf") != self.sessions.csrf(session):
            return html(layout.page("Not allowed", "<h1>Sign-out refused</h1>"), 403)
        response = Response(status_code=303, headers={"location": layout.BASE + "/"})
        secure = over_https(request, self.trusted_proxies)
        response.raw_headers.append((b"set-cookie", set_cookie("", secure=secure, max_age=0)))
        return response

    async def report(self) -> dict[str, Any]:
        since = accounts.usage_since(None)
        return usage_report(since, await self.store.usage(since))

    async def users(self) -> str:
        users = await self.store.users()
        report = await self.report()
        spent = {u.name: spent_now(u.budget, report["data"], u.name) for u in users if u.budget}
        return users_page.users_page(users, spent, self.routes)

    async def chat_search(self, request: Request) -> str:
        raw = {k: v[:200] for k, v in request.query_params.items()}
        try:
            query = chats.Query(
                since=parse_time("From", raw.get("since") or None),
                until=parse_time("To", raw.get("until") or None),
                user=raw.get("user", "").strip(),
                model=raw.get("model", "").strip(),
                text=raw.get("q", "").strip(),
            )
        except ConvertError as exc:
            page = chatlog_page.chats_page(chats.Query(), [], self.chat_enabled, raw)
            return f'<p class="alert" role="alert">{escape(str(exc))}</p>' + page
        found = await asyncio.to_thread(chats.search, self.chat_root, query)
        return chatlog_page.chats_page(query, found, self.chat_enabled, raw)

    async def chat_one(self, request: Request) -> str:
        file = request.query_params.get("f", "")
        offset = request.query_params.get("o", "")
        record = None
        if offset.isdigit():
            record = await asyncio.to_thread(chats.open_one, self.chat_root, file, int(offset))
        if record is None:
            return "<h1>Not found</h1><p>That exchange is no longer in the chat log.</p>"
        return chatlog_page.exchange_page(record)


def spent_now(budget: Budget | None, rows: list[dict[str, Any]], name: str) -> float:
    """What the usage records say `name` spent in the budget's current period."""
    if budget is None:
        return 0.0
    period = budget.window(datetime.now(UTC))[0]
    costs = [float(r["cost"]) for r in rows if r["user"] == name and r["day"].startswith(period)]
    return sum(costs)


def over_https(request: Request, trusted: Sequence[IPNetwork]) -> bool:
    """Whether the browser reached us over HTTPS: directly, or through a TLS-terminating
    proxy in TRUSTED_PROXIES that says so in X-Forwarded-Proto (anyone else's is ignored)."""
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else ""
    if not trusted or not listed(parse_ip(peer), trusted):
        return False
    # The value the nearest proxy (the trusted one) added is the last.
    proto = request.headers.get("x-forwarded-proto", "").rpartition(",")[2]
    return proto.strip().lower() == "https"


def same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def read_form(request: Request) -> dict[str, str]:
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM:
            return {}
    parsed = parse_qs(raw.decode("latin-1"), max_num_fields=10)
    return {k: v[0] for k, v in parsed.items()}


def html(text: str, status: int = 200) -> Response:
    return Response(text, status, media_type="text/html; charset=utf-8")
