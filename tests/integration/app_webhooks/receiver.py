"""A client app's webhook endpoint on loopback: records every delivery and answers as the test tells it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def verified(self, secret: str) -> dict[str, Any]:
        """The body as the client verifies it with the standardwebhooks library (raises when it does not verify)."""
        payload: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return payload

    @property
    def type(self) -> str:
        return str(json.loads(self.body)["type"])


@dataclass
class Receiver:
    url: str
    answer: Callable[[Delivery], int] = lambda d: 200
    hold: threading.Event | None = None  # when set to an unset Event, requests wait on it before answering
    held: threading.Event = field(default_factory=threading.Event)
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self) -> list[Delivery]:
        """The deliveries answered with a 2xx, in arrival order."""
        with self.lock:
            return [d for d in self.deliveries if 200 <= d.status < 300]

    def all(self) -> list[Delivery]:
        with self.lock:
            return list(self.deliveries)

    async def wait_accepted(self, count: int, *, timeout: float = 60.0) -> list[Delivery]:
        """Wait (without blocking the loop a worker may run on) until `count` deliveries were accepted."""
        deadline = time.monotonic() + timeout
        while len(found := self.accepted()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(found)} of {count} deliveries accepted within {timeout} s: {[d.type for d in found]}"
                )
            await asyncio.sleep(0.05)
        return found


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            delivery = Delivery({k.lower(): v for k, v in self.headers.items()}, body, 0)
            if receiver.hold is not None and not receiver.hold.is_set():
                receiver.held.set()
                receiver.hold.wait(60)
                return  # the sender is gone by now: no answer, nothing accepted
            delivery.status = receiver.answer(delivery)
            with receiver.lock:
                receiver.deliveries.append(delivery)
            self.send_response(delivery.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hooks/billing")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        server.shutdown()
        server.server_close()
