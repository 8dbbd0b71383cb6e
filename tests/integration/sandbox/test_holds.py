"""The sandbox's holds: the next matching API request is parked before it runs until the test releases it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from stripe_sandbox import create_sandbox_app
from tests.support.app import serve_in_thread
from tests.support.stripe import SANDBOX_KEY

AUTH = {"Authorization": f"Bearer {SANDBOX_KEY}"}


def test_a_held_request_waits_unexecuted_until_released_and_others_pass() -> None:
    app = create_sandbox_app(base_url="http://127.0.0.1")
    with (
        serve_in_thread(app) as server,
        httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client,
        ThreadPoolExecutor(1) as pool,
    ):
        hold = client.post("/_sandbox/holds", data={"method": "POST", "path_prefix": "/v1/customers"}).json()
        assert client.post(f"/_sandbox/holds/{hold['id']}/wait", data={"timeout": "0.1"}).status_code == 504
        parked = pool.submit(client.post, "/v1/customers", data={"email": "held@example.com"})
        waited = client.post(f"/_sandbox/holds/{hold['id']}/wait", data={"timeout": "10"})
        assert waited.status_code == 200 and waited.json()["parked_path"] == "/v1/customers"
        # parked before it ran: nothing created yet, and other requests (even the same one) pass
        assert client.get("/v1/customers").json()["data"] == []
        passing = client.post("/v1/customers", data={"email": "free@example.com"})
        assert passing.status_code == 200 and not parked.done()
        client.post(f"/_sandbox/holds/{hold['id']}/release").raise_for_status()
        assert parked.result(timeout=10).json()["email"] == "held@example.com"
        assert client.get("/_sandbox/holds").json()["holds"] == []
        assert client.post(f"/_sandbox/holds/{hold['id']}/release").status_code == 404


def test_a_reset_releases_every_parked_request_and_bad_holds_are_refused() -> None:
    app = create_sandbox_app(base_url="http://127.0.0.1")
    with (
        serve_in_thread(app) as server,
        httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client,
        ThreadPoolExecutor(1) as pool,
    ):
        assert client.post("/_sandbox/holds", data={"method": "PUT", "path_prefix": "/v1/x"}).status_code == 400
        assert client.post("/_sandbox/holds", data={"path_prefix": "/_sandbox/clock"}).status_code == 400
        hold = client.post("/_sandbox/holds", data={"method": "GET", "path_prefix": "/v1/customers"}).json()
        parked = pool.submit(client.get, "/v1/customers")
        assert client.post(f"/_sandbox/holds/{hold['id']}/wait").json()["parked"] is True
        client.post("/_sandbox/reset").raise_for_status()
        assert parked.result(timeout=10).status_code == 200
        assert client.get("/_sandbox/holds").json()["holds"] == []
