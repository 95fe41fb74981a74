"""Headless Debian Chromium driven by selenium through the system chromedriver (no downloads)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1440,1800")


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(f"{names[0]} is missing: apt-get install -y chromium chromium-driver (make chromium)")


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """A fresh headless browser with its own profile; FAILS (never skips) when Chromium is missing."""
    browser, driver = _binary("chromium", "chromium-browser"), _binary("chromedriver")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
        try:
            session.set_page_load_timeout(30)
            yield session
        finally:
            session.quit()


def full_page_screenshot(session: webdriver.Chrome, path: Path) -> Path:
    """Resize the window to the document's height first, so the file shows the whole page."""
    height = int(session.execute_script("return document.documentElement.scrollHeight"))
    session.set_window_size(1440, max(900, min(height + 40, 6000)))
    path.parent.mkdir(parents=True, exist_ok=True)
    assert session.save_screenshot(str(path)), f"screenshot {path} was not written"
    return path
