"""Browser tests run in Debian's chromium through Playwright (never a downloaded browser).

Outside CI a missing chromium skips browser tests with the command to install it; with CI=true it fails them.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
]
INSTALL_HINT = "apt-get install -y chromium fonts-tlwg-loma-otf"


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> str:
    path = chromium_path()
    if path is None:
        message = f"Debian chromium is not installed; install it with: {INSTALL_HINT}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": require_chromium(), "args": CHROMIUM_ARGS}


def _uses_browser(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return any(name in names for name in ("page", "context", "browser"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last: Playwright's sync API keeps an event loop running in the main thread from its
    first use to the end of the session, and pytest-asyncio cannot run async tests beside it."""
    for item in items:
        if _uses_browser(item):
            item.add_marker(pytest.mark.browser)
    items.sort(key=_uses_browser)
