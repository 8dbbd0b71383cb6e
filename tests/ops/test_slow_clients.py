"""Slow headers and slow bodies (slowloris) no longer hold a socket for ever: each request must arrive within the
server's read deadline; the app's own time to answer does not count."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from payment.embedded_pg import free_port
from payment.serving import make_server

DEADLINE = 1.5


async def echo(request: Request) -> PlainTextResponse:
    body = await request.body()
    await asyncio.sleep(float(request.query_params.get("think", "0")))
    return PlainTextResponse(f"got {len(body)}")


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    """`payment serve`'s uvicorn settings with a short read deadline, on loopback."""
    port = free_port()
    app = Starlette(routes=[Route("/echo", echo, methods=["GET", "POST"])])
    uv = make_server(app, "127.0.0.1", port, log_level="warning", request_read_seconds=DEADLINE)
    thread = threading.Thread(target=lambda: asyncio.run(uv.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    yield port
    uv.should_exit = True
    thread.join(10)


def trickle(port: int, parts: list[bytes], *, every: float = 0.25, limit: float = 10.0) -> tuple[float, bytes]:
    """Send `parts` one at a time until the server closes; (seconds the socket stayed open, what came back)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as conn:
        received = b""
        for part in parts:
            try:
                conn.sendall(part)
            except OSError:
                break
            conn.settimeout(every)
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            received += chunk
            if not chunk or received.endswith(b"got 5"):
                break
        return time.monotonic() - started, received


def test_slow_headers_are_cut_off_at_the_deadline(server: int) -> None:
    request = b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    held, received = trickle(server, [request[i : i + 1] for i in range(len(request))])
    assert held < DEADLINE + 2 and b"HTTP/1.1 200" not in received


def test_a_slow_body_is_cut_off_at_the_deadline(server: int) -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n"
    held, received = trickle(server, [head] + [b"b"] * 200)
    assert held < DEADLINE + 2 and b"HTTP/1.1 200" not in received


def test_a_prompt_request_to_a_slow_app_is_answered(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server), timeout=15) as conn:
        conn.sendall(b"POST /echo?think=3 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        received = b""
        while b"got 5" not in received:
            chunk = conn.recv(4096)
            assert chunk, received
            received += chunk
    assert received.startswith(b"HTTP/1.1 200")
