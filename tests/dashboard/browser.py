"""A headless Debian Chromium driven by selenium, or a failure that says what to install."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

INSTALL = (
    "the browser test needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver; scripts/test installs them) and selenium (pip install -e '.[dev]')"
)


def screenshots_dir(tmp_path: Path) -> Path:
    """AIFD_SCREENSHOTS when set (to keep them), else the test's own temporary folder."""
    target = Path(os.environ.get("AIFD_SCREENSHOTS") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


@contextmanager
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
