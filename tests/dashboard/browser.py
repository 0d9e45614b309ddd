"""Headless Debian Chromium (selenium) and Firefox ESR (Marionette), or a failure that
says what to install."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.marionette import Marionette
from tests.fakes import FakeUpstream, free_port
from tests.users.fakes import TOKEN, usage_handler

REAL_KEY = "sk-real-browser-key-0123456789"

INSTALL = (
    "the browser test needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver; scripts/test installs them) and selenium (pip install -e '.[dev]')"
)


def dashboard_settings(upstream: FakeUpstream, tmp_path: Path) -> dict[str, Any]:
    """The gateway of the browser tests: users on SQLite, priced, chat log on."""
    upstream.handler = usage_handler
    return {
        "OPENAI_BASE_URL": upstream.url,
        "OPENAI_API_KEY": REAL_KEY,
        "ADMIN_TOKEN": TOKEN,
        "STORE_URL": f"sqlite:///{tmp_path}/users.db",
        "MODEL_PRICES": "gpt-4o-mini=1000/1000",  # a tenth of a cent a token
        "USAGE_FLUSH_INTERVAL": 0.1,
        "LOG_CHAT": "true",
        "LOG_DIR": str(tmp_path / "logs"),
    }


def wait_for(check: Callable[[], Any], seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "the page did not show it in time"
        time.sleep(0.1)


def screenshots_dir(tmp_path: Path) -> Path:
    """AIFD_SCREENSHOTS when set (to keep them), else the test's own temporary folder."""
    target = Path(os.environ.get("AIFD_SCREENSHOTS") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver") or "/usr/lib/chromium/chromedriver"
    if browser is None or not os.path.exists(driver_path):
        pytest.fail(INSTALL)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(INSTALL)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


INSTALL_FIREFOX = (
    "the Firefox test needs Debian's firefox-esr (apt-get install firefox-esr; scripts/test "
    "installs it)"
)
# No network for the browser: Marionette's recommended preferences turn off updates,
# telemetry and the like; these cover what they leave on.
FIREFOX_PREFS = {
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage": "about:blank",
    "browser.startup.page": 0,
    "browser.safebrowsing.downloads.remote.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "dom.push.connection.enabled": False,
    "services.settings.server": "data:,#remote-settings-off/v1",
    "browser.region.network.url": "",
    "media.gmp-manager.url": "",
    "extensions.getAddons.cache.enabled": False,
}


@contextlib.contextmanager
def firefox(profile: Path) -> Iterator[Marionette]:
    """A Marionette session of a headless firefox-esr on a fresh profile in `profile`.

    Firefox's window has a minimum width, so a phone's width is had by zooming (see
    `phone_width`): that needs the chrome context, hence -remote-allow-system-access.
    """
    browser = shutil.which("firefox-esr") or shutil.which("firefox")
    if browser is None:
        pytest.fail(INSTALL_FIREFOX)
    port = free_port()
    profile.mkdir(parents=True, exist_ok=True)
    prefs = {**FIREFOX_PREFS, "marionette.port": port}
    lines = [f"user_pref({json.dumps(name)}, {json.dumps(v)});\n" for name, v in prefs.items()]
    (profile / "user.js").write_text("".join(lines))
    command = [browser, "--headless", "--marionette", "-remote-allow-system-access"]
    command += ["--no-remote", "--profile", str(profile), "about:blank"]
    env = {**os.environ, "MOZ_CRASHREPORTER_DISABLE": "1"}
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    client = None
    try:
        deadline = time.monotonic() + 60
        while True:  # Marionette listens once the browser is up
            assert process.poll() is None, f"{browser} exited at start ({process.returncode})"
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"{browser}: Marionette never listened"
                time.sleep(0.2)
        client = Marionette(port)
        client.send("WebDriver:SetTimeouts", {"pageLoad": 20_000})
        client.window_size(1280, 1000)
        yield client
    finally:
        if client is not None:
            with contextlib.suppress(Exception):  # gone already? It is stopped below.
                client.close()
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def phone_width(client: Marionette, css_pixels: int = 390) -> None:
    """Show the page `css_pixels` wide, as on a phone (zoom 2 in a window twice as wide),
    until the next navigation."""
    client.window_size(css_pixels * 2, 1688)
    client.chrome_script("gBrowser.selectedBrowser.fullZoom = 2;")
