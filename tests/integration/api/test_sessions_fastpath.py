"""POST /api/v1/sessions is served in front of the routers and the page middleware (payment/api/fastpath.py): what
that middleware gave it (security headers, the NUL refusal, the 405 of other methods) still holds, a client gone
mid-body leaves nothing behind, and the driver connections kept between requests (all but a quarter of the pool) survive
PostgreSQL dropping them."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import Message

from payment.bootstrap import create_app
from payment.db import Database
from payment.dburl import libpq_url
from payment.models import BillingSession, Customer
from payment.runtime import Services
from tests.integration.api.schema import conforms
from tests.support import factories

URL = "/api/v1/sessions"


@pytest.fixture(scope="module")
async def key(services: Services) -> str:
    async with services.db.transaction() as session:
        _, issued = await factories.create_app(session, slug="lyra", name="Lyra")
    return issued


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def sessions_of(services: Services, external_user_id: str) -> int:
    async with services.db.session() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(BillingSession)
            .join(Customer, Customer.id == BillingSession.customer_id)
            .where(Customer.external_user_id == external_user_id)
        )
    return int(count or 0)


@pytest.mark.parametrize(
    ("body", "status"),
    [({"externalUserId": "fast-headers", "appSlug": "lyra"}, 201), ({"appSlug": "lyra"}, 422)],
)
async def test_answers_carry_the_security_headers(
    client: httpx.AsyncClient, key: str, body: dict[str, str], status: int
) -> None:
    response = await client.post(URL, json=body, headers=auth(key))
    assert response.status_code == status, response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in response.headers  # development: HSTS only in production


async def test_a_nul_in_the_query_is_refused_as_everywhere(
    client: httpx.AsyncClient, services: Services, key: str
) -> None:
    body = {"externalUserId": "fast-nul", "appSlug": "lyra"}
    response = await client.post(f"{URL}?x=%00", json=body, headers=auth(key))
    assert response.status_code == 400
    assert (await conforms(client, response, "Problem"))["code"] == "bad_request"
    assert await sessions_of(services, "fast-nul") == 0


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_other_methods_are_a_405_problem(client: httpx.AsyncClient, key: str, method: str) -> None:
    response = await client.request(method, URL, json={"externalUserId": "x", "appSlug": "lyra"}, headers=auth(key))
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert (await conforms(client, response, "Problem"))["code"] == "method_not_allowed"
    assert response.headers["x-frame-options"] == "DENY"


async def test_a_client_gone_mid_body_gets_no_answer_and_nothing_is_written(services: Services, key: str) -> None:
    app = create_app(services=services)
    first = b'{"externalUserId": "fast-gone", "appSlug": "lyra"}'
    messages: list[Message] = [
        {"type": "http.request", "body": first, "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": URL,
        "raw_path": URL.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    assert sent == []
    assert await sessions_of(services, "fast-gone") == 0


async def test_kept_driver_connections_dropped_by_postgres_are_replaced_once(
    client: httpx.AsyncClient, services: Services, key: str, database_url: str
) -> None:
    body = {"externalUserId": "fast-dropped", "appSlug": "lyra"}
    # concurrent requests leave several driver connections kept, and the ORM pool has idle ones too
    answers = await asyncio.gather(*(client.post(URL, json=body, headers=auth(key)) for _ in range(4)))
    assert [a.status_code for a in answers] == [201] * 4
    admin = await asyncpg.connect(libpq_url(database_url))
    try:
        dropped = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'aquoris-payment'"
        )
    finally:
        await admin.close()
    assert dropped >= 2
    response = await client.post(URL, json=body, headers=auth(key))
    assert response.status_code == 201, response.text
    assert await sessions_of(services, "fast-dropped") == 5
    assert (await client.post(URL, json=body, headers=auth(key))).status_code == 201


async def test_driver_calls_leave_the_orm_its_share_of_the_pool_and_wait_for_one_of_theirs(database_url: str) -> None:
    db = Database(database_url, pool_size=2, pool_timeout=0.3)  # one for on_driver, one for the ORM
    holding, release = asyncio.Event(), asyncio.Event()

    async def pid(conn: asyncpg.Connection) -> int:
        return int(await conn.fetchval("SELECT pg_backend_pid()"))

    async def hold(conn: asyncpg.Connection) -> int:
        holding.set()
        await release.wait()
        return await pid(conn)

    try:
        first = asyncio.create_task(db.on_driver(hold))
        await holding.wait()
        with pytest.raises(PoolTimeout):  # its one place is taken: a 503 "busy" over HTTP
            await db.on_driver(pid)
        async with db.session() as session:  # the ORM's share is still there
            assert await session.scalar(text("SELECT 1")) == 1
        waiting = asyncio.create_task(db.on_driver(pid))
        release.set()
        assert await waiting == await first  # the same connection, kept and handed over
    finally:
        await db.dispose()
