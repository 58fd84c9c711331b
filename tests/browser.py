"""Debian's chromium, driven by playwright, for the console's end-to-end tests and benchmarks.

Never downloads a browser (no ``playwright install``): it launches ``/usr/bin/chromium`` (Debian's
``chromium`` package, installed by ``make test`` through scripts/install_chromium.sh). Where it is
missing the tests skip with the reason, except under CI (``CI=true``), where they fail loudly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

CHROMIUM = os.environ.get("SPECKLE_LAB_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def missing() -> str | None:
    """Why the browser cannot run here, or None."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"{CHROMIUM} not found (Debian: apt-get install chromium; or bash scripts/install_chromium.sh)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


def require() -> None:
    """Skips the calling test where the browser is missing; fails under CI=true."""
    import pytest

    why = missing()
    if why is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI needs the browser for the console tests: {why}")
    pytest.skip(why)


@contextlib.contextmanager
def chromium():
    """A headless chromium (playwright Browser) on the system's binary."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
