"""The dashboard in Firefox (Debian's firefox-esr, driven over Marionette): signing in,
the overview, users and chat log at a desktop's and a phone's width; screenshots of each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.browser import (
    REAL_KEY,
    dashboard_settings,
    firefox,
    phone_width,
    screenshots_dir,
    wait_for,
)
from tests.dashboard.marionette import ENTER, ESCAPE, MarionetteError
from tests.fakes import FakeUpstream, ProxyServer
from tests.users.fakes import TOKEN, sdk


@pytest.fixture
def gateway(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], tmp_path: Path
) -> ProxyServer:
    return proxy_factory(**dashboard_settings(upstream, tmp_path))


def test_dashboard_in_firefox(gateway: ProxyServer, tmp_path: Path) -> None:
    shots = screenshots_dir(tmp_path)
    ui = gateway.url + "/admin/ui/"
    with firefox(tmp_path / "firefox-profile") as browser:

        def text() -> str:
            try:
                return browser.find("body").text
            except MarionetteError:  # between two pages
                return ""

        def shot(name: str) -> None:
            (shots / f"firefox-{name}.png").write_bytes(browser.screenshot())

        version = browser.capabilities["browserVersion"]
        assert int(version.split(".")[0]) >= 115, f"an old Firefox: {version}"

        # No session: the sign-in page, never data; a wrong token keeps it there.
        browser.navigate(ui + "users")
        assert browser.find_all("[name=token]") and "New user" not in text()
        shot("1-sign-in")
        browser.find("[name=token]").send_keys("not-the-admin-token" + ENTER)
        wait_for(lambda: "Wrong admin token" in text())
        assert not [c for c in browser.cookies() if c["name"] == "aifd_admin"]

        # Signing in with the keyboard alone; the cookie is out of the page's reach.
        browser.find("[name=token]").send_keys(TOKEN + ENTER)
        wait_for(lambda: "Cost today" in text())
        (cookie,) = [c for c in browser.cookies() if c["name"] == "aifd_admin"]
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
        assert TOKEN not in browser.url
        assert browser.script("return document.cookie") == ""

        # Create a user through the page (its script calls /admin with the CSRF token).
        browser.navigate(ui + "users")
        form = browser.find("#create-user")
        form.find("[name=name]").send_keys("fox")
        form.find("[name=budget]").send_keys("1/day" + ENTER)
        wait_for(lambda: browser.find("#key-dialog").is_displayed())
        key = browser.find("#key-dialog code").text
        assert key.startswith("aifd-")
        shot("2-new-key")
        # Escape closes the dialog, as any modal dialog; the list then shows the user.
        browser.find("#key-dialog [data-close]").send_keys(ESCAPE)
        wait_for(lambda: "$1/day" in text())
        assert key not in browser.page_source
        shot("3-users")

        # The keyboard alone: Enter on "Edit" opens its dialog with the focus inside; a
        # change saved with Enter applies; Escape closes the dialog and gives focus back.
        edit = browser.find("[data-edit]")
        browser.script("arguments[0].focus()", edit.element_json)
        edit.send_keys(ENTER)
        wait_for(lambda: browser.find("#edit-dialog").is_displayed())
        assert browser.script("return document.activeElement.closest('#edit-dialog') !== null")
        budget = browser.find("#edit-dialog [name=budget]")
        browser.script("arguments[0].select()", budget.element_json)
        budget.send_keys("2/day" + ENTER)
        wait_for(lambda: "$2/day" in text())
        edit = browser.find("[data-edit]")
        browser.script("arguments[0].focus()", edit.element_json)
        edit.send_keys(ENTER)
        wait_for(lambda: browser.find("#edit-dialog").is_displayed())
        browser.find("#edit-dialog [name=budget]").send_keys(ESCAPE)
        wait_for(lambda: not browser.find("#edit-dialog").is_displayed())
        assert browser.script("return document.activeElement.hasAttribute('data-edit')")

        # The key through the official SDK; the overview shows its tokens and cost.
        messages: Any = [{"role": "user", "content": "hello from firefox"}]
        with sdk(gateway.url, key) as client:
            client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=5)

        def by_user() -> str:
            browser.navigate(ui)
            table = browser.xpath("//h2[.='By user']/following-sibling::div")
            return table.text

        wait_for(lambda: "fox 1 11 4 0 $0.0150" in by_user())
        assert len(browser.find_all("figure.chart svg rect")) >= 1
        shot("4-overview")

        # The chat log: search, open the exchange; no real key anywhere.
        browser.navigate(ui + "chats?user=fox&q=firefox")
        links = wait_for(lambda: browser.find_all("td a"))
        assert len(links) == 1
        shot("5-chat-log")
        links[0].click()
        wait_for(lambda: "One exchange" in text())
        assert "hello from firefox" in text() and "Hi!" in text()
        assert REAL_KEY not in browser.page_source and key not in browser.page_source
        shot("6-exchange")

        # A phone's width: every view readable without sideways scrolling.
        for name, path in (("overview", ""), ("users", "users"), ("chat-log", "chats")):
            browser.navigate(ui + path)
            phone_width(browser)  # a navigation resets the zoom
            width, overflow = browser.script(
                "const d = document.documentElement;"
                "return [window.innerWidth, d.scrollWidth - d.clientWidth]"
            )
            shot(f"7-phone-{name}")
            wide = browser.script(
                "return [...document.querySelectorAll('body *')].filter(e => !e.closest('.scroll')"
                " && e.getBoundingClientRect().right > window.innerWidth + 1).map(e =>"
                " e.tagName + '.' + e.className + ' ' + e.getBoundingClientRect().right)"
            )
            assert width == 390 and overflow <= 1, (name, width, overflow, wide)
    assert len(list(shots.glob("firefox-*.png"))) == 9
