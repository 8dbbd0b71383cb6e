"""The service under test: in-process over ASGI (httpx) or served by uvicorn for browsers and other processes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from payment.bootstrap import build_services, create_app
from payment.config import Settings
from payment.embedded_pg import free_port
from payment.runtime import Services


@asynccontextmanager
async def asgi_client(app: Starlette, base_url: str = "http://testserver") -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the app in-process, with its lifespan running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=base_url, follow_redirects=False) as client:
            yield client


@asynccontextmanager
async def running_services(settings: Settings) -> AsyncIterator[Services]:
    services = build_services(settings)
    try:
        yield services
    finally:
        await services.stripe.aclose()
        await services.db.dispose()


class ThreadServer:
    """uvicorn on a free loopback port in a thread with its own event loop."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on", timeout_graceful_shutdown=5
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def start(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@contextmanager
def serve_in_thread(app: Any, port: int | None = None) -> Iterator[ThreadServer]:
    server = ThreadServer(app, port).start()
    try:
        yield server
    finally:
        server.stop()


def serve_service(settings: Settings, port: int | None = None) -> ThreadServer:
    """The whole service (create_app) in a thread; its engine lives on that thread's loop."""
    port = port or free_port()
    settings = settings.replace(base_url=f"http://127.0.0.1:{port}")
    return ThreadServer(create_app(settings), port)


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, on a fresh loop in another thread.

    Browser tests are sync and run while Playwright keeps an event loop running in the main thread, so their
    fixtures cannot use the session loop; this is how they set up data (e.g. `run_sync(make_rows(url))`).
    """
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")
