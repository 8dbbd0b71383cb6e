"""Run the sandbox and a webhook receiver with uvicorn on free loopback ports; drive them with the real SDK."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import stripe
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from stripe.params.checkout import SessionCreateParams, SessionCreateParamsSubscriptionData

from stripe_sandbox import create_sandbox_app
from tests.support.narrow import id_of
from tests.support.shared import stripe_fixtures

API_KEY = "sk_test_sandbox123"
WEBHOOK_SECRET = "whsec_test_receiver_secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    def __init__(self, app: Any, port: int) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)


@dataclass
class Receiver:
    """A webhook receiver that records requests; answers 500 to the first `fail_next` requests.

    With `delay_seconds` it takes that long to read each request before recording it, as a slow endpoint would.
    """

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    delay_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            if self.delay_seconds:
                await asyncio.sleep(self.delay_seconds)
            with self.lock:
                failing = self.fail_next > 0
                if failing:
                    self.fail_next -= 1
                self.requests.append({"body": body, "headers": dict(request.headers), "failed": failing})
            if failing:
                return JSONResponse({"error": "boom"}, status_code=500)
            return JSONResponse({"received": True})

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    def events(self) -> list[stripe.Event]:
        """Successfully answered deliveries, verified with the SDK exactly as the service does."""
        with self.lock:
            ok = [r for r in self.requests if not r["failed"]]
        return [stripe.Webhook.construct_event(r["body"], r["headers"]["stripe-signature"], WEBHOOK_SECRET) for r in ok]

    def types(self) -> list[str]:
        return [e.type for e in self.events()]


class Sandbox:
    def __init__(self, url: str, receiver: Receiver) -> None:
        self.url = url
        self.receiver = receiver
        self.http = httpx.Client(base_url=url, timeout=30)
        self.client = stripe.StripeClient(
            API_KEY,
            base_addresses={"api": url, "connect": url, "files": url},
            http_client=stripe.HTTPXClient(allow_sync_methods=True),
            max_network_retries=0,
        )

    def async_client(self) -> stripe.StripeClient:
        return stripe.StripeClient(
            API_KEY,
            base_addresses={"api": self.url, "connect": self.url, "files": self.url},
            http_client=stripe.HTTPXClient(),
            max_network_retries=0,
        )

    def control(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.http.request(method, f"/_sandbox/{path}", **kwargs)
        assert response.status_code < 500, response.text
        data: dict[str, Any] = response.json()
        return data

    def now(self) -> int:
        return int(self.control("GET", "clock")["now"])

    def advance(self, seconds: int) -> dict[str, Any]:
        return self.control("POST", "clock/advance", data={"seconds": str(seconds)})

    def flush(self) -> None:
        assert self.control("POST", "webhooks/flush", json={"timeout": 10})["idle"]

    def pay(self, session_id: str, card: str = "4242424242424242") -> dict[str, Any]:
        response = self.http.post(f"/_sandbox/checkout_sessions/{session_id}/pay", data={"card": card})
        data: dict[str, Any] = response.json()
        data["status_code"] = response.status_code
        return data

    def set_card(self, customer: str | stripe.Customer, card: str) -> None:
        self.control("POST", f"customers/{id_of(customer)}/card", data={"card": card})

    # catalog helpers ------------------------------------------------------------------
    def price(self, amount: int = 19900, currency: str = "thb", interval: str = "month") -> stripe.Price:
        product = self.client.v1.products.create(params={"name": "Aquoris Pro"})
        return self.client.v1.prices.create(
            params={
                "product": product.id,
                "currency": currency,
                "unit_amount": amount,
                "recurring": {"interval": interval},
            }
        )

    def subscribe(
        self,
        email: str = "ann@example.com",
        card: str = "4242424242424242",
        subscription_data: SessionCreateParamsSubscriptionData | None = None,
    ) -> tuple[stripe.checkout.Session, stripe.Subscription]:
        price = self.price()
        customer = self.client.v1.customers.create(params={"email": email})
        params: SessionCreateParams = {
            "mode": "subscription",
            "customer": customer.id,
            "success_url": "http://app.test/ok?s={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://app.test/cancel",
            "line_items": [{"price": price.id, "quantity": 1}],
        }
        if subscription_data is not None:
            params["subscription_data"] = subscription_data
        session = self.client.v1.checkout.sessions.create(params=params)
        paid = self.pay(session.id, card)
        assert paid["status_code"] == 200, paid
        session = self.client.v1.checkout.sessions.retrieve(session.id)
        return session, self.client.v1.subscriptions.retrieve(id_of(session.subscription))


@pytest.fixture(scope="session")
def fixtures() -> dict[str, Any]:
    return stripe_fixtures()


@pytest.fixture(scope="session")
def receiver_server() -> Iterator[Receiver]:
    receiver = Receiver()
    port = free_port()
    receiver.url = f"http://127.0.0.1:{port}/hook"
    with ServerThread(receiver.app(), port):
        yield receiver


@pytest.fixture(scope="session")
def emulator(receiver_server: Receiver) -> Iterator[Sandbox]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_sandbox_app(
        base_url=url, webhook_endpoints=[(receiver_server.url, WEBHOOK_SECRET)], retry_base_seconds=0.02, max_attempts=4
    )
    with ServerThread(app, port):
        yield Sandbox(url, receiver_server)


@pytest.fixture
def sbx(emulator: Sandbox) -> Sandbox:
    emulator.control("POST", "reset")
    with emulator.receiver.lock:
        emulator.receiver.requests.clear()
        emulator.receiver.fail_next = 0
        emulator.receiver.delay_seconds = 0.0
    return emulator


def assert_covers(obj: Any, fixture: dict[str, Any], ignore: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    keys = set(obj.keys()) if isinstance(obj, dict) else set(obj.to_dict().keys())
    missing = set(fixture) - keys - ignore
    assert not missing, f"missing keys vs fixture: {sorted(missing)}"
