"""The dashboard in a real browser: sign in, create a user, see its traffic, tokens and
cost, its 429 past the budget, and its exchange in the chat log; screenshots of each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.dashboard.browser import (
    REAL_KEY,
    chromium,
    dashboard_settings,
    screenshots_dir,
    wait_for,
)
from tests.fakes import FakeUpstream, ProxyServer
from tests.users.fakes import TOKEN, sdk


def layout_shift(browser: Any) -> float:
    """The page's cumulative layout shift so far (Chromium's Layout Instability API)."""
    return float(
        browser.execute_async_script(
            "const done = arguments[arguments.length - 1]; let total = 0;"
            "const seen = new PerformanceObserver((list) => { for (const e of list.getEntries())"
            " if (!e.hadRecentInput) total += e.value; });"
            "seen.observe({type: 'layout-shift', buffered: true});"
            "setTimeout(() => { seen.disconnect(); done(total); }, 300);"
        )
    )


@pytest.fixture
def gateway(
    upstream: FakeUpstream, proxy_factory: Callable[..., ProxyServer], tmp_path: Path
) -> ProxyServer:
    return proxy_factory(**dashboard_settings(upstream, tmp_path))


def test_dashboard_end_to_end_in_chromium(
    upstream: FakeUpstream, gateway: ProxyServer, tmp_path: Path
) -> None:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    shots = screenshots_dir(tmp_path)
    ui = gateway.url + "/admin/ui/"
    with chromium(tmp_path / "profile") as browser:

        def text() -> str:
            try:
                return str(browser.find_element(By.TAG_NAME, "body").text)
            except WebDriverException:  # between two pages
                return ""

        # No session: the sign-in page, and a wrong token keeps it there.
        browser.get(ui + "users")
        assert browser.find_elements(By.NAME, "token") and "Users" not in text()
        browser.save_screenshot(str(shots / "1-sign-in.png"))
        field = browser.find_element(By.NAME, "token")
        field.send_keys("not-the-admin-token", Keys.ENTER)
        wait_for(lambda: "Wrong admin token" in text())
        assert browser.get_cookie("aifd_admin") is None

        # Signing in with the keyboard alone.
        browser.find_element(By.NAME, "token").send_keys(TOKEN, Keys.ENTER)
        wait_for(lambda: "Overview" in text())
        cookie = browser.get_cookie("aifd_admin")
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
        assert TOKEN not in browser.current_url
        assert browser.execute_script("return document.cookie") == ""

        # Create a user through the page; its key is shown once.
        browser.get(ui + "users")
        form = browser.find_element(By.ID, "create-user")
        form.find_element(By.NAME, "name").send_keys("zoe")
        form.find_element(By.NAME, "budget").send_keys("0.03/day")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        dialog = wait_for(lambda: browser.find_element(By.ID, "key-dialog").is_displayed())
        assert dialog
        key = browser.find_element(By.CSS_SELECTOR, "#key-dialog code").text
        assert key.startswith("aifd-")
        browser.save_screenshot(str(shots / "2-new-key.png"))
        browser.find_element(By.CSS_SELECTOR, "#key-dialog [data-close]").click()
        wait_for(lambda: "$0.03/day" in text())
        assert key not in browser.page_source
        browser.save_screenshot(str(shots / "3-users.png"))

        # The key works through the SDK until its budget is spent: $0.015 a request.
        client = sdk(gateway.url, key)
        messages: Any = [{"role": "user", "content": "hello from the browser test"}]
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=5)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=5)
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["code"] == "budget_exceeded"

        # The overview shows the requests, tokens and cost, and the refusal.
        def by_user() -> str:
            browser.get(ui)
            table = browser.find_element(By.XPATH, "//h2[.='By user']/following-sibling::div")
            return str(table.text)

        wait_for(lambda: "zoe 2 22 8 0 $0.0300" in by_user())
        assert "Cost today\n$0.0300" in text()
        errors = browser.find_element(By.XPATH, "//h2[.='Latest errors']/following-sibling::div")
        assert "budget exceeded" in errors.text and "429" in errors.text
        assert len(browser.find_elements(By.CSS_SELECTOR, "figure.chart svg rect")) >= 2
        browser.save_screenshot(str(shots / "4-overview.png"))

        # The chat log: search by user and text, open the exchange; no real key anywhere.
        browser.get(ui + "chats?user=zoe&q=browser+test")
        link = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "td a"))
        assert len(link) == 2
        browser.save_screenshot(str(shots / "5-chat-log.png"))
        link[0].click()
        wait_for(lambda: "One exchange" in text())
        assert "hello from the browser test" in text() and "Hi!" in text()
        assert REAL_KEY not in browser.page_source and key not in browser.page_source
        browser.save_screenshot(str(shots / "6-exchange.png"))

        # Edit the budget in the dialog; the change applies at once.
        browser.get(ui + "users")
        browser.find_element(By.CSS_SELECTOR, "[data-edit]").click()
        budget = browser.find_element(By.CSS_SELECTOR, "#edit-dialog [name=budget]")
        budget.clear()
        budget.send_keys("1/day", Keys.ENTER)
        wait_for(lambda: "$1/day" in text())
        client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=5)

        # No view moves under the reader's eyes as it loads, at a desktop's width or a phone's.
        views = (("overview", ""), ("users", "users"), ("chat-log", "chats"))
        for name, path in views:
            browser.get(ui + path)
            assert layout_shift(browser) < 0.01, name

        # A phone's width: every view readable without sideways scrolling.
        browser.set_window_size(390, 844)
        for name, path in views:
            browser.get(ui + path)
            wide = browser.execute_script(
                "const d = document.documentElement; return d.scrollWidth - d.clientWidth"
            )
            assert wide <= 1, name
            assert layout_shift(browser) < 0.01, name
            browser.save_screenshot(str(shots / f"7-phone-{name}.png"))
    assert sorted(p.name for p in shots.glob("[0-9]-*.png"))[0] == "1-sign-in.png"
    # The page itself never reached the upstream (no favicon.ico or such forwarded).
    assert {r.path for r in upstream.requests} == {"/v1/chat/completions"}
