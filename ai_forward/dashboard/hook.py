"""Plugs the dashboard in: its page at /admin/ui and, while it is open, the activity hook."""

from __future__ import annotations

from ..pipeline import NOTHING, Contribution, Shared
from ..settings import Settings
from ..users.session import AdminSessions
from ..users.store import open_store
from .activity import Activity
from .app import Dashboard


def install(settings: Settings, shared: Shared) -> Contribution:
    """Nothing without ADMIN_TOKEN (or with ADMIN_UI=false): not even a hook."""
    token = settings.users.admin_token
    if token is None or not settings.users.admin_ui:
        return NOTHING
    store = open_store(settings.users.store_url)
    activity = Activity(shared.redactor)
    chatlog = settings.chatlog
    page = Dashboard(
        AdminSessions(token),
        store,
        activity,
        tuple(route.prefix for route in settings.routes),
        chatlog.chat_dir,
        chatlog.enabled,
        settings.client_ip.trusted_proxies,
    )
    return Contribution(hooks=(activity,), resources=(store,), mounts=(("/admin/ui", page),))
