"""Debian's chromium, headless, driven by Playwright (no downloaded browser: `playwright install`
is never run), and the portal's login as a browser does it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 15_000


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """A Playwright browser; the test is skipped when chromium or playwright is not installed
    (scripts/install-test-deps.sh installs the one, requirements-test.txt the other)."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            yield browser
        finally:
            browser.close()


def log_in(page: Any, base_url: str, name: str, password: str) -> None:
    """Type the name and password in the login form and send it."""
    page.goto(f"{base_url}/login")
    page.fill("#field-name", name)
    page.fill("#field-password", password)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_load_state()
