"""Sentry: errors from a request and from a job reach the ingest (a local receiver), with no secret inside."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import procrastinate
import pytest
from playwright.sync_api import Browser

from payment.config import Settings
from payment.dburl import libpq_url
from payment.embedded_pg import free_port
from payment.observability import FILTERED, Scrubber, init_sentry, secret_values
from tests.ops.processes import process_env, python_module, started
from tests.ops.receiver import Received, Receiver, http_receiver

SECRET_KEY = "ops-test-secret-key-" + secrets.token_hex(16)
STRIPE_KEY = "sk_test_51" + secrets.token_hex(12)
WEBHOOK_SECRET = "whsec_" + secrets.token_hex(16)
ADMIN_PASSWORD = "Admin-" + secrets.token_hex(8)
API_KEY = "apk_" + secrets.token_urlsafe(32)
BILLING_TOKEN = secrets.token_urlsafe(32)
COOKIE = "session=" + secrets.token_hex(20)
CARD = "4242 4242 4242 4242"
JOB_CARD = "4111-1111-1111-1111"
QUERY_PASSWORD = "hunter2-" + secrets.token_hex(4)


@pytest.fixture(scope="module")
def ingest() -> Iterator[Receiver]:
    with http_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def sentry_env(database_url: str, ingest: Receiver) -> dict[str, str]:
    port = urlsplit(ingest.url).port
    return process_env(
        database_url,
        SENTRY_DSN=f"http://publickey@127.0.0.1:{port}/1",
        SENTRY_ENVIRONMENT="ops-test",
        SENTRY_RELEASE="aquoris-payment@ops-test",
        SECRET_KEY=SECRET_KEY,
        STRIPE_SECRET_KEY=STRIPE_KEY,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        ADMIN_PASSWORD=ADMIN_PASSWORD,
    )


def events(received: Received) -> list[dict[str, Any]]:
    """The error events of one envelope (a header line, then item header and payload lines)."""
    found = []
    for line in received.text().splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and "exception" in item:
            found.append(item)
    return found


def wait_for_event(ingest: Receiver, component: str, text: str) -> tuple[dict[str, Any], str]:
    """The first event from `component` whose exception mentions `text` (the worker's periodic jobs may report
    their own errors too), and the text of every envelope received so far."""

    def ours(event: dict[str, Any]) -> bool:
        return event.get("tags", {}).get("component") == component and any(
            text in (value.get("value") or "") for value in event["exception"]["values"]
        )

    hits = ingest.wait_for(lambda r: any(ours(e) for e in events(r)), timeout=30)
    assert hits, f"no {component} event arrived; got {len(ingest.requests)} envelopes"
    with ingest.lock:
        everything = "\n".join(r.text() for r in ingest.requests)
    return next(e for e in events(hits[0]) if ours(e)), everything


def secrets_in(payload: str, database_url: str) -> list[str]:
    database_password = urlsplit(database_url).password or "no-password"
    plain = {
        "SECRET_KEY": SECRET_KEY,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "api key": API_KEY[4:],
        "billing token": BILLING_TOKEN,
        "cookie": COOKIE.split("=")[1],
        "card": CARD,
        "card digits": CARD.replace(" ", ""),
        "card in a query": CARD.replace(" ", "+"),
        "card in a url": CARD.replace(" ", "%20"),
        "job card": JOB_CARD,
        "password in the query": QUERY_PASSWORD,
        "database password": database_password,
        "database password (url-encoded)": quote(database_password, safe=""),
    }
    return [name for name, value in plain.items() if value in payload]


def test_an_error_in_a_request_reaches_sentry_without_secrets(
    sentry_env: dict[str, str], ingest: Receiver, database_url: str
) -> None:
    port = free_port()
    with started(python_module("tests.ops.service_process", "web", str(port)), sentry_env) as web:
        web.wait_for_output("READY")
        response = httpx.get(
            f"http://127.0.0.1:{port}/billing/{BILLING_TOKEN}/explode",
            params={"card": CARD, "password": QUERY_PASSWORD},
            headers={"Authorization": f"Bearer {API_KEY}", "Cookie": COOKIE, "X-Api-Key": API_KEY},
            timeout=30,
        )
        event, payload = wait_for_event(ingest, "web", "charge failed for card")
        web.popen.send_signal(signal.SIGTERM)
        web.popen.wait(30)

    assert response.status_code == 500
    assert secrets_in(response.text, database_url) == []
    [exception] = event["exception"]["values"][-1:]
    assert exception["type"] == "RuntimeError" and "charge failed for card" in exception["value"]
    assert event["environment"] == "ops-test" and event["release"] == "aquoris-payment@ops-test"
    assert event["request"]["url"].endswith(f"/billing/{FILTERED}/explode")
    assert FILTERED in exception["value"]
    assert secrets_in(payload, database_url) == []


async def test_an_error_in_a_job_reaches_sentry_without_secrets(
    sentry_env: dict[str, str], ingest: Receiver, database_url: str
) -> None:
    jobs = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=libpq_url(database_url)))
    with started(python_module("tests.ops.service_process", "worker"), sentry_env) as worker:
        await asyncio.to_thread(worker.wait_for_output, "READY")
        async with jobs.open_async():
            await jobs.configure_task("ops_test.explode", queue="ops_test").defer_async(api_key=API_KEY, card=JOB_CARD)
        event, payload = await asyncio.to_thread(wait_for_event, ingest, "worker", "job failed for card")
        worker.popen.send_signal(signal.SIGTERM)
        await asyncio.to_thread(worker.popen.wait, 30)

    [exception] = event["exception"]["values"][-1:]
    assert exception["type"] == "RuntimeError" and "job failed for card" in exception["value"]
    assert event["environment"] == "ops-test" and event["release"] == "aquoris-payment@ops-test"
    assert secrets_in(payload, database_url) == []


def test_errors_in_the_browser_reach_sentry_through_our_tunnel_without_secrets(
    sentry_env: dict[str, str], ingest: Receiver, database_url: str, browser: Browser
) -> None:
    port = free_port()
    with started(python_module("tests.ops.service_process", "web", str(port)), sentry_env) as web:
        web.wait_for_output("READY")
        page = browser.new_page()
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(f"http://127.0.0.1:{port}/billing/{BILLING_TOKEN}/throws?password={QUERY_PASSWORD}&key={API_KEY}")
        thrown, _ = wait_for_event(ingest, "browser", "browser boom")
        rejected, payload = wait_for_event(ingest, "browser", "browser rejection")
        page.close()
        web.popen.send_signal(signal.SIGTERM)
        web.popen.wait(30)

    assert all(url.startswith(f"http://127.0.0.1:{port}/") for url in requests)  # nothing third-party
    for event, kind in ((thrown, "error"), (rejected, "unhandledrejection")):
        assert event["tags"]["component"] == "browser" and event["tags"]["surface"] == "billing"
        assert event["tags"]["kind"] == kind
        assert event["environment"] == "ops-test" and event["release"] == "aquoris-payment@ops-test"
        assert event["extra"]["page"] == "/billing/[Filtered]/throws"
    assert thrown["exception"]["values"][-1]["type"] == "TypeError"
    assert secrets_in(payload, database_url) == []


def test_the_error_tunnel_bounds_size_rate_and_origin(sentry_env: dict[str, str], ingest: Receiver) -> None:
    port = free_port()
    with started(python_module("tests.ops.service_process", "web", str(port)), sentry_env) as web:
        web.wait_for_output("READY")
        url = f"http://127.0.0.1:{port}/api/client-errors"
        report = {"kind": "error", "surface": "admin", "type": "Error", "message": "tunnel-limit", "url": "/admin/"}
        assert httpx.post(url, json={**report, "stack": "x" * 20_000}).status_code == 413
        assert httpx.post(url, content=b"not json", headers={"Content-Type": "application/json"}).status_code == 400
        assert httpx.post(url, json=report, headers={"Origin": "https://evil.example"}).status_code == 403
        statuses = [httpx.post(url, json=report).status_code for _ in range(12)]
        web.popen.send_signal(signal.SIGTERM)
        web.popen.wait(30)
    assert statuses[:10] == [204] * 10 and statuses[10:] == [429, 429]


def test_sentry_is_off_without_a_dsn() -> None:
    assert init_sentry(Settings(app_env="test"), component="web") is False


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Authorization: Bearer apk_abcdefghijklmnop", "Authorization: "),
        ("key apk_Zx9_-abcdefghijklmnop used", "key apk_"),
        ("stripe sk_live_51HxYzAbC and rk_test_51Abc", "stripe sk_live_"),
        ("signing whsec_AbCdEf0123456789", "signing whsec_"),
        ("GET https://pay.example/billing/AbCdEfGhIjKlMnOpQrStUvWxYz012345/plans", "GET https://pay.example/billing/"),
        ("card 4242 4242 4242 4242 declined", "card "),
        ("card 4000-0000-0000-0002 declined", "card "),
        ("pan=378282246310005", "pan="),
        ("GET /x?number=4242+4242+4242+4242&y=1", "GET /x?number="),
        ("GET /x?n=4242%204242%204242%204242", "GET /x?n="),
        ("postgresql://payment:s3cr3t-pw@db:5432/payment", "postgresql://payment:"),
        ("login password=hunter22&next=/admin", "login password="),
        ("GET /admin/login?next=%2Fx%3Fpassword%3Dhunter22%26y%3D1", "GET /admin/login?next=%2Fx%3Fpassword%3D"),
        ("redirect=%2Fcb%3Ftoken%3DAbCdEfGhIjKl", "redirect=%2Fcb%3Ftoken%3D"),
        ("double password%253Dhunter22%2526z", "double password%253D"),
        ("Settings(secret_key='abcdef0123456789abcdef', app_env='test')", "Settings(secret_key="),
    ],
)
def test_scrubber_removes_each_kind_of_secret_from_text(text: str, kept: str) -> None:
    scrubbed = Scrubber().text(text)
    assert FILTERED in scrubbed and scrubbed.startswith(kept)
    for word in (
        "abcdefghijklmnop",
        "51HxYzAbC",
        "AbCdEf0123",
        "AbCdEfGhIj",
        "4242",
        "0002",
        "378282",
        "s3cr3t",
        "hunter22",
        "abcdef0123",
    ):
        assert word not in scrubbed


def test_scrubber_keeps_ordinary_numbers_and_sentry_ids() -> None:
    event = {
        "event_id": "1234567890123456789012345678abcd",
        "message": "took 1764226801.123456 s for 12 rows",
        "extra": {"order": "1234567890123"},
    }  # 13 digits failing the Luhn check: not a card number
    assert Scrubber().event(event) == event


def test_scrubber_blanks_sensitive_keys_and_configured_secrets() -> None:
    settings = Settings(
        app_env="test",
        secret_key="a-configured-secret-key-0123456789abcdef",
        database_url="postgresql://u:db%40pass@h/d",
    )
    event = {
        "request": {
            "headers": {"Authorization": "x", "Cookie": "y", "Accept": "text/html"},
            "cookies": {"session": "z"},
        },
        "extra": {
            "note": "key was a-configured-secret-key-0123456789abcdef",
            "dsn": "http://k@h/1",
            "pair": ["x-api-key", "v"],
            "url": "postgresql://u:db@pass@h/d",
        },
    }
    scrubbed = Scrubber(secret_values(settings)).event(event)
    assert scrubbed["request"]["headers"] == {"Authorization": FILTERED, "Cookie": FILTERED, "Accept": "text/html"}
    assert scrubbed["request"]["cookies"] == FILTERED
    assert scrubbed["extra"]["note"] == f"key was {FILTERED}"
    assert scrubbed["extra"]["dsn"] == FILTERED and scrubbed["extra"]["pair"] == ["x-api-key", FILTERED]
    assert "db@pass" not in json.dumps(scrubbed)
