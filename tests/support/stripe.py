"""The Stripe sandbox for tests: one uvicorn server per run, reset on demand, reached through the real SDK."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.app import ThreadServer

SANDBOX_KEY = "sk_test_aquoris_sandbox"


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[ThreadServer]:
    """The offline Stripe emulator on a free loopback port (state shared by the run; see `sandbox`)."""
    from payment.embedded_pg import free_port
    from stripe_sandbox import create_sandbox_app

    port = free_port()
    app = create_sandbox_app(base_url=f"http://127.0.0.1:{port}", retry_base_seconds=0.05)
    server = ThreadServer(app, port).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sandbox(sandbox_server: ThreadServer) -> str:
    """The sandbox's base URL, with its state (objects, events, webhook endpoints, clock) reset for this test."""
    response = httpx.post(f"{sandbox_server.url}/_sandbox/reset", headers={"Authorization": f"Bearer {SANDBOX_KEY}"})
    response.raise_for_status()
    return sandbox_server.url


def register_webhook(sandbox_url: str, url: str, secret: str | None = None) -> str:
    """Point the sandbox's event deliveries at `url`; returns the endpoint's whsec_ secret."""
    data: dict[str, str] = {"url": url, "enabled_events[]": "*"}
    if secret is not None:
        data["secret"] = secret
    response = httpx.post(
        f"{sandbox_url}/v1/webhook_endpoints", data=data, headers={"Authorization": f"Bearer {SANDBOX_KEY}"}
    )
    response.raise_for_status()
    return str(response.json()["secret"])
