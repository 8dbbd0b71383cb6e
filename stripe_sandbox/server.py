"""Run the sandbox with uvicorn on a loopback address."""

from __future__ import annotations

import ipaddress
from typing import Any

import uvicorn

from .app import create_sandbox_app


def check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"The Stripe sandbox only binds loopback addresses (127.0.0.1, ::1, localhost), not {host!r}.")


def make_server(
    host: str = "127.0.0.1",
    port: int = 12111,
    *,
    base_url: str | None = None,
    log_level: str = "warning",
    **kwargs: Any,
) -> uvicorn.Server:
    check_loopback(host)
    shown = f"[{host}]" if ":" in host else host
    app = create_sandbox_app(base_url=base_url or f"http://{shown}:{port}", **kwargs)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on")
    return uvicorn.Server(config)


async def serve(host: str = "127.0.0.1", port: int = 12111, **kwargs: Any) -> None:
    """Serve until cancelled / SIGINT. kwargs go to `create_sandbox_app` (plus `base_url`, `log_level`)."""
    await make_server(host, port, **kwargs).serve()
