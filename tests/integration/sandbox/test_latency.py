"""The sandbox's latency setting: every API answer waits, hosted pages and /_sandbox do not; and its count of API
requests."""

from __future__ import annotations

import time

import httpx
import pytest

from stripe_sandbox import create_sandbox_app
from tests.support.app import serve_in_thread
from tests.support.stripe import SANDBOX_KEY

LATENCY_MS = 1500
AUTH = {"Authorization": f"Bearer {SANDBOX_KEY}"}


def _timed(client: httpx.Client, method: str, path: str, **kwargs: object) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    return response, time.monotonic() - started


def test_every_api_answer_waits_the_latency_and_the_pages_do_not() -> None:
    app = create_sandbox_app(base_url="http://127.0.0.1", latency_ms=LATENCY_MS)
    with serve_in_thread(app) as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        created, took = _timed(client, "POST", "/v1/customers", data={"email": "a@example.com"})
        assert created.status_code == 200 and took >= LATENCY_MS / 1000
        fetched, took = _timed(client, "GET", f"/v1/customers/{created.json()['id']}")
        assert fetched.json()["email"] == "a@example.com" and took >= LATENCY_MS / 1000
        missing, took = _timed(client, "GET", "/v1/customers/cus_nope")  # an error answer waits as well
        assert missing.status_code == 404 and took >= LATENCY_MS / 1000
        unknown, took = _timed(client, "GET", "/v1/no_such_route")
        assert unknown.status_code == 404 and took >= LATENCY_MS / 1000
        clock, took = _timed(client, "GET", "/_sandbox/clock")
        assert clock.status_code == 200 and took < LATENCY_MS / 1000
        page, took = _timed(client, "GET", "/c/pay/cs_nope")
        assert page.status_code == 404 and took < LATENCY_MS / 1000


def test_a_negative_latency_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        create_sandbox_app(base_url="http://127.0.0.1", latency_ms=-1)


def test_the_api_requests_are_counted_by_route() -> None:
    app = create_sandbox_app(base_url="http://127.0.0.1")
    with serve_in_thread(app) as server, httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        created = client.post("/v1/customers", data={"email": "a@example.com"})
        for _ in range(2):
            client.get(f"/v1/customers/{created.json()['id']}")
        client.get("/v1/customers/cus_nope")  # an error answer is a request as well
        client.get("/_sandbox/clock")  # the controls are not Stripe's API
        assert client.get("/_sandbox/requests").json() == {
            "POST /v1/customers": 1,
            "GET /v1/customers/{id}": 3,
        }
