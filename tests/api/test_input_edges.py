"""API inputs at the edges: the published email pattern (ECMAScript regex semantics) and the server agree, so a
client validating with it never gets a 422 for an email it passed; a long numeric externalUserId is just an id."""

from __future__ import annotations

import re

import httpx
import pytest

from payment.runtime import Services
from tests.support import factories

# ECMAScript's \s (WhiteSpace and LineTerminator), which differs from Python's (\x1c-\x1f and \x85 in, \ufeff out)
ECMA_SPACE = "\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
TRICKY = ["\u0085", "\ufeff", "\u00a0", "\u2028", "\u1680", "\u200b", "\u001c", "\u00e9"]


@pytest.fixture(scope="module")
async def api_key(services: Services) -> str:
    async with services.db.transaction() as session:
        _, key = await factories.create_app(session, slug="mail", name="Mail")
    return key


def as_ecmascript(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern.replace("\\s", ECMA_SPACE))


@pytest.mark.parametrize("char", TRICKY, ids=[f"U+{ord(c):04X}" for c in TRICKY])
async def test_the_published_email_pattern_and_the_server_agree(
    client: httpx.AsyncClient, api_key: str, char: str
) -> None:
    document = (await client.get("/api/v1/openapi.json")).json()
    schema = document["components"]["schemas"]["SessionRequest"]["properties"]["email"]
    email = f"ann{char}lee@example.com"
    published_ok = as_ecmascript(schema["pattern"]).search(email) is not None
    response = await client.post(
        "/api/v1/sessions",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"externalUserId": f"user-{ord(char)}", "appSlug": "mail", "email": email},
    )
    assert response.status_code == (201 if published_ok else 422), (published_ok, response.text)


async def test_a_long_numeric_external_user_id_is_an_ordinary_id(client: httpx.AsyncClient, api_key: str) -> None:
    user = str(2**64)  # beyond bigint, but an external id is text
    opened = await client.post(
        "/api/v1/sessions",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"externalUserId": user, "appSlug": "mail"},
    )
    assert opened.status_code == 201
    read = await client.get(
        f"/api/v1/customers/{user}/subscription?appSlug=mail", headers={"Authorization": f"Bearer {api_key}"}
    )
    assert read.status_code == 200, read.text
