"""Browser tests run in Debian's chromium through Playwright (never a downloaded browser).

Outside CI a missing chromium skips browser tests with the command to install it; with CI=true it fails them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserType, Playwright, sync_playwright

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


# Playwright's sync API runs an event loop in the main thread from start() to stop(), and pytest-asyncio cannot run
# async tests beside it. pytest-playwright keeps one Playwright for the whole session; ours lives for one module,
# so async test modules can follow browser modules in any order (and pytest-xdist may order modules as it likes).
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    pw = sync_playwright().start()
    yield pw
    pw.stop()


@pytest.fixture(scope="module")
def browser_context_args(playwright: Playwright, device: str | None, base_url: str | None) -> dict[str, Any]:
    args: dict[str, Any] = dict(playwright.devices[device]) if device else {}
    if base_url:
        args["base_url"] = base_url
    return args


@pytest.fixture(scope="module")
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    found: BrowserType = getattr(playwright, browser_name)
    return found


@pytest.fixture(scope="module")
def launch_browser(browser_type_launch_args: dict[str, Any], browser_type: BrowserType) -> Callable[..., Browser]:
    def launch(**kwargs: Any) -> Browser:
        return browser_type.launch(**{**browser_type_launch_args, **kwargs})

    return launch


@pytest.fixture(scope="module")
def browser(launch_browser: Callable[..., Browser]) -> Iterator[Browser]:
    launched = launch_browser()
    yield launched
    launched.close()


def _uses_browser(item: pytest.Item) -> bool:
    names = getattr(item, "fixturenames", ())
    return any(name in names for name in ("page", "context", "browser"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark browser tests (`-m browser` / `-m "not browser"`) and run them after the others when in one process."""
    for item in items:
        if _uses_browser(item):
            item.add_marker(pytest.mark.browser)
    items.sort(key=_uses_browser)
