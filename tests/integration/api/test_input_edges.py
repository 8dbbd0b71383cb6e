"""API inputs at the edges: the published patterns (ECMAScript regex semantics) and the server agree, so a client
validating with them never gets a 422 for a value it passed, nor a 201 for one it refused; a long numeric
externalUserId is just an id."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from payment.runtime import Services
from tests.support import factories

# ECMAScript's \s (WhiteSpace and LineTerminator), which differs from Python's (\x1c-\x1f and \x85 in, \ufeff out)
ECMA_SPACE = "\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
TRICKY = ["\u0085", "\ufeff", "\u00a0", "\u2028", "\u1680", "\u200b", "\u001c", "\u00e9", "\n"]


@pytest.fixture(scope="module")
async def api_key(services: Services) -> str:
    async with services.db.transaction() as session:
        _, key = await factories.create_app(session, slug="mail", name="Mail")
    return key


def as_ecmascript(pattern: str) -> re.Pattern[str]:
    """The pattern as a JSON Schema validator reads it: ECMAScript's \\s, and $ only at the very end (fullmatch)."""
    return re.compile(pattern.replace("\\s", ECMA_SPACE))


def published(document: dict[str, Any], field: str) -> re.Pattern[str]:
    pattern: str = document["components"]["schemas"]["SessionRequest"]["properties"][field]["pattern"]
    return as_ecmascript(pattern)


@pytest.mark.parametrize("char", TRICKY, ids=[f"U+{ord(c):04X}" for c in TRICKY])
@pytest.mark.parametrize(
    ("field", "value"),
    [("email", "ann{c}lee@example.com"), ("email", "ann@example.com{c}"), ("externalUserId", "{c}")],
)
async def test_the_published_pattern_and_the_server_agree(
    client: httpx.AsyncClient, api_key: str, char: str, field: str, value: str
) -> None:
    document = (await client.get("/api/v1/openapi.json")).json()
    sent = value.format(c=char)
    published_ok = published(document, field).fullmatch(sent) is not None
    body = {"externalUserId": f"user-{ord(char)}", "appSlug": "mail", field: sent}
    response = await client.post("/api/v1/sessions", headers={"Authorization": f"Bearer {api_key}"}, json=body)
    assert response.status_code == (201 if published_ok else 422), (published_ok, response.text)


async def test_the_path_parameter_is_checked_by_its_published_schema(client: httpx.AsyncClient, api_key: str) -> None:
    document = (await client.get("/api/v1/openapi.json")).json()
    operation = document["paths"]["/customers/{externalUserId}/subscription"]["get"]
    (parameter,) = operation["parameters"]
    pattern = as_ecmascript(parameter["schema"]["pattern"])
    for user in ["\u3000", "\ufeff", "\u0085", "user-\u00e9"]:
        expected = 200 if pattern.fullmatch(user) else 422
        response = await client.get(
            f"/api/v1/customers/{user}/subscription", headers={"Authorization": f"Bearer {api_key}"}
        )
        assert response.status_code == expected, (user, response.text)


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
