"""Check API responses against the served OpenAPI document's component schemas (jsonschema_rs comes with
schemathesis)."""

from __future__ import annotations

from typing import Any

import httpx
from jsonschema_rs import Draft202012Validator


async def conforms(client: httpx.AsyncClient, response: httpx.Response, schema_name: str) -> dict[str, Any]:
    """The response's JSON, after asserting it matches `#/components/schemas/<schema_name>`."""
    doc = (await client.get("/api/v1/openapi.json")).json()
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": doc["components"]}
    body: dict[str, Any] = response.json()
    errors = [e.message for e in Draft202012Validator(schema, validate_formats=True).iter_errors(body)]
    assert not errors, errors
    expected = "application/problem+json" if schema_name == "Problem" else "application/json"
    assert response.headers["content-type"].split(";")[0] == expected
    return body
