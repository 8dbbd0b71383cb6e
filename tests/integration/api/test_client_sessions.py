"""POST /api/v1/sessions: a client app opens a billing session for a user, or learns exactly why not."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from payment.bootstrap import create_app
from payment.models import AuditLog, BillingSession, Customer
from payment.runtime import Services
from tests.integration.api.schema import conforms
from tests.support import factories
from tests.support.app import asgi_client


@pytest.fixture(scope="module")
async def apps(services: Services) -> dict[str, tuple[str, str]]:
    """Two client apps committed to this module's database: slug -> (slug, api key)."""
    async with services.db.transaction() as session:
        vega, vega_key = await factories.create_app(session, slug="vega", name="Vega")
        orion, orion_key = await factories.create_app(session, slug="orion", name="Orion")
    return {"vega": (vega.slug, vega_key), "orion": (orion.slug, orion_key)}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def post_session(client: httpx.AsyncClient, key: str, body: object) -> httpx.Response:
    return await client.post("/api/v1/sessions", json=body, headers=auth(key))


async def problem(client: httpx.AsyncClient, response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = await conforms(client, response, "Problem")
    assert body["code"] == code
    assert body["status"] == status
    return body


async def test_creates_a_session_with_a_url_that_expires_in_an_hour(
    client: httpx.AsyncClient, apps: dict[str, tuple[str, str]], services: Services
) -> None:
    _, key = apps["vega"]
    before = datetime.now(UTC)
    response = await post_session(client, key, {"externalUserId": "user-1", "appSlug": "vega"})
    assert response.status_code == 201, response.text
    body = await conforms(client, response, "Session")
    assert response.headers["cache-control"] == "no-store"
    prefix = f"{services.settings.base_url}/billing/"
    assert body["url"].startswith(prefix)
    token = body["url"].removeprefix(prefix)
    assert len(token) >= 22  # >= 128 bits in URL-safe base64
    expires = datetime.fromisoformat(body["expiresAt"])
    assert before + timedelta(seconds=3590) < expires < datetime.now(UTC) + timedelta(seconds=3610)
    async with services.db.session() as session:
        row = (
            await session.execute(select(BillingSession).where(BillingSession.id == uuid.UUID(body["id"])))
        ).scalar_one()
        customer = await session.get(Customer, row.customer_id)
    assert row.token_hash == hashlib.sha256(token.encode()).digest()
    assert token.encode() not in row.token_hash
    assert customer is not None and customer.external_user_id == "user-1"


async def test_each_session_gets_its_own_token(client: httpx.AsyncClient, apps: dict[str, tuple[str, str]]) -> None:
    _, key = apps["vega"]
    urls = {
        (await post_session(client, key, {"externalUserId": "user-2", "appSlug": "vega"})).json()["url"]
        for _ in range(3)
    }
    assert len(urls) == 3


async def test_session_lifetime_follows_the_setting(services: Services, apps: dict[str, tuple[str, str]]) -> None:
    short = dataclasses.replace(services, settings=services.settings.replace(session_ttl_seconds=120))
    async with asgi_client(create_app(services=short)) as client:
        response = await post_session(client, apps["vega"][1], {"externalUserId": "user-3", "appSlug": "vega"})
    expires = datetime.fromisoformat(response.json()["expiresAt"])
    assert timedelta(seconds=110) < expires - datetime.now(UTC) < timedelta(seconds=125)


async def test_upserts_the_customer_and_updates_what_the_app_sends(
    client: httpx.AsyncClient, apps: dict[str, tuple[str, str]], services: Services
) -> None:
    _, key = apps["vega"]
    first = await post_session(
        client,
        key,
        {"externalUserId": "user-4", "appSlug": "vega", "email": "a@example.com", "name": "Ann", "locale": "th"},
    )
    assert first.status_code == 201
    second = await post_session(
        client, key, {"externalUserId": "user-4", "appSlug": "vega", "email": "ann@example.com"}
    )
    assert second.status_code == 201
    async with services.db.session() as session:
        rows = (await session.execute(select(Customer).where(Customer.external_user_id == "user-4"))).scalars().all()
        actions = (
            await session.execute(
                select(AuditLog.action, AuditLog.actor)
                .where(AuditLog.entity_type == "customer", AuditLog.entity_id == str(rows[0].id))
                .order_by(AuditLog.id)
            )
        ).all()
    assert [(r.email, r.name, r.locale) for r in rows] == [("ann@example.com", "Ann", "th")]
    assert [tuple(a) for a in actions] == [("customer.created", "app:vega"), ("customer.updated", "app:vega")]


async def test_missing_key_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/sessions", json={"externalUserId": "u", "appSlug": "vega"})
    await problem(client, response, 401, "missing_api_key")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer apk_not-a-real-key", "Basic dXNlcjpwdw==", "Bearer ", "apk_x"])
async def test_invalid_key_is_401(client: httpx.AsyncClient, apps: dict[str, tuple[str, str]], header: str) -> None:
    response = await client.post(
        "/api/v1/sessions", json={"externalUserId": "u", "appSlug": "vega"}, headers={"Authorization": header}
    )
    await problem(client, response, 401, "invalid_api_key")


async def test_key_of_another_app_is_403(client: httpx.AsyncClient, apps: dict[str, tuple[str, str]]) -> None:
    response = await post_session(client, apps["orion"][1], {"externalUserId": "u", "appSlug": "vega"})
    await problem(client, response, 403, "app_mismatch")


@pytest.mark.parametrize("slug", ["nebula", "Not A Slug\u0000"])
async def test_unknown_app_is_404(client: httpx.AsyncClient, apps: dict[str, tuple[str, str]], slug: str) -> None:
    response = await post_session(client, apps["vega"][1], {"externalUserId": "u", "appSlug": slug})
    await problem(client, response, 404, "app_not_found")


async def test_no_session_or_customer_is_created_for_a_refused_request(
    client: httpx.AsyncClient, apps: dict[str, tuple[str, str]], services: Services
) -> None:
    await post_session(client, apps["orion"][1], {"externalUserId": "refused-user", "appSlug": "vega"})
    async with services.db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Customer).where(Customer.external_user_id == "refused-user")
        )
    assert count == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"appSlug": "vega"}, "externalUserId"),
        ({"externalUserId": "u"}, "appSlug"),
        ({"externalUserId": 42, "appSlug": "vega"}, "externalUserId"),
        ({"externalUserId": "u", "appSlug": ["vega"]}, "appSlug"),
        ({"externalUserId": "", "appSlug": "vega"}, "externalUserId"),
        ({"externalUserId": "   ", "appSlug": "vega"}, "externalUserId"),
        ({"externalUserId": "x" * 256, "appSlug": "vega"}, "externalUserId"),
        ({"externalUserId": "nul\u0000byte", "appSlug": "vega"}, "externalUserId"),
        ({"externalUserId": "u", "appSlug": "v" * 129}, "appSlug"),
        ({"externalUserId": "u", "appSlug": ""}, "appSlug"),
        ({"externalUserId": "u", "appSlug": "vega", "email": "not-an-email"}, "email"),
        ({"externalUserId": "u", "appSlug": "vega", "email": "a@b.co" + "m" * 320}, "email"),
        ({"externalUserId": "u", "appSlug": "vega", "email": True}, "email"),
        ({"externalUserId": "u", "appSlug": "vega", "name": "n" * 1025}, "name"),
        ({"externalUserId": "u", "appSlug": "vega", "locale": "thai language"}, "locale"),
        ({"externalUserId": "u", "appSlug": "vega", "locale": 7}, "locale"),
    ],
)
async def test_invalid_body_is_422_naming_the_field(
    client: httpx.AsyncClient, apps: dict[str, tuple[str, str]], body: dict[str, object], field: str
) -> None:
    response = await post_session(client, apps["vega"][1], body)
    problem_body = await problem(client, response, 422, "validation_error")
    assert problem_body["errors"] == [{"field": field, "message": problem_body["detail"]}]


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null"])
async def test_body_that_is_not_an_object_is_422(
    client: httpx.AsyncClient, apps: dict[str, tuple[str, str]], body: bytes
) -> None:
    response = await client.post(
        "/api/v1/sessions", content=body, headers={**auth(apps["vega"][1]), "Content-Type": "application/json"}
    )
    await problem(client, response, 422, "validation_error")


async def test_lone_surrogate_in_json_is_422(client: httpx.AsyncClient, apps: dict[str, tuple[str, str]]) -> None:
    response = await client.post(
        "/api/v1/sessions",
        content=b'{"externalUserId": "\\ud800", "appSlug": "vega"}',
        headers={**auth(apps["vega"][1]), "Content-Type": "application/json"},
    )
    await problem(client, response, 422, "validation_error")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_non_json_body_is_415(
    client: httpx.AsyncClient, apps: dict[str, tuple[str, str]], content_type: str | None
) -> None:
    headers = auth(apps["vega"][1])
    if content_type:
        headers["Content-Type"] = content_type
    response = await client.post("/api/v1/sessions", content=b"externalUserId=u&appSlug=vega", headers=headers)
    await problem(client, response, 415, "unsupported_media_type")


@pytest.mark.parametrize("content", [b"{not json", b"", b'{"a": 1', b"[" * 50_000, b"\xff\xfe{}"])
async def test_malformed_json_is_400(
    client: httpx.AsyncClient, apps: dict[str, tuple[str, str]], content: bytes
) -> None:
    response = await client.post(
        "/api/v1/sessions", content=content, headers={**auth(apps["vega"][1]), "Content-Type": "application/json"}
    )
    await problem(client, response, 400, "invalid_json")


async def test_oversized_body_is_413(
    client: httpx.AsyncClient, apps: dict[str, tuple[str, str]], services: Services
) -> None:
    big = {"externalUserId": "u", "appSlug": "vega", "name": "x" * services.settings.max_body_bytes}
    response = await post_session(client, apps["vega"][1], big)
    await problem(client, response, 413, "payload_too_large")


async def test_oversized_streamed_body_without_length_is_413(
    client: httpx.AsyncClient, apps: dict[str, tuple[str, str]], services: Services
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"externalUserId": "u", "appSlug": "vega", "name": "'
        for _ in range(services.settings.max_body_bytes // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    response = await client.post(
        "/api/v1/sessions", content=chunks(), headers={**auth(apps["vega"][1]), "Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    await problem(client, response, 413, "payload_too_large")


async def test_missing_key_is_checked_before_the_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/sessions", content=b"nonsense", headers={"Content-Type": "text/plain"})
    await problem(client, response, 401, "missing_api_key")
