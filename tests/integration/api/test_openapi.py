"""The OpenAPI document says what the client API does: every route is in it, and a fuzz run finds no lie.

schemathesis generates requests from the document (valid and invalid) against the live service on loopback and
checks each response: no 5xx, a documented status code and content type, a body matching the schema, invalid
input rejected.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks
from starlette.routing import Route

from payment.api import client as client_api
from payment.config import Settings
from payment.runtime import Services
from tests.support import factories
from tests.support.app import ThreadServer, serve_service

FUZZ_EXAMPLES = 50


def documented_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item}


def routed_operations() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in client_api.routes:
        assert isinstance(route, Route)
        path = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path)
        found |= {(method, path) for method in (route.methods or set()) if method != "HEAD"}
    return found


async def test_every_route_is_documented_and_every_operation_routed(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    assert documented_operations(doc) == routed_operations()


async def test_every_error_status_of_an_operation_is_documented(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/api/v1/openapi.json")).json()
    sessions = doc["paths"]["/sessions"]["post"]["responses"]
    assert set(sessions) == {"201", "400", "401", "403", "404", "413", "415", "422", "503"}
    codes = doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
    assert set(codes) == {
        "invalid_json",
        "bad_request",
        "method_not_allowed",
        "unavailable",
        "missing_api_key",
        "invalid_api_key",
        "app_mismatch",
        "app_not_found",
        "not_found",
        "payload_too_large",
        "unsupported_media_type",
        "validation_error",
    }


@pytest.fixture(scope="module")
async def vega_key(services: Services) -> str:
    async with services.db.transaction() as session:
        _, key = await factories.create_app(session, slug="vega", name="Vega")
        await factories.create_plan(session, slug="free", name="Free", price_cents=0)
    return key


@pytest.fixture(scope="module")
def live(settings: Settings, vega_key: str) -> Iterator[ThreadServer]:
    server = serve_service(settings).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_schema(live: ThreadServer) -> Any:
    return schemathesis.openapi.from_url(f"{live.url}/api/v1/openapi.json")


FUZZ_CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


def for_own_app(case: Any) -> Any:
    """Most generated slugs name no app (404); this variant reaches the 201 path with random user fields."""
    if isinstance(case.body, dict) and "appSlug" in case.body:
        case.body["appSlug"] = "vega"
    return case


@pytest.mark.parametrize("variant", ["positive", "positive-own-app", "negative"])
def test_fuzz_finds_no_server_error_and_no_response_outside_the_schema(
    api_schema: Any, vega_key: str, variant: str
) -> None:
    mode = GenerationMode.NEGATIVE if variant == "negative" else GenerationMode.POSITIVE
    for result in api_schema.get_all_operations():
        operation = result.ok()
        strategy = operation.as_strategy(generation_mode=mode)
        if variant == "positive-own-app":
            strategy = strategy.map(for_own_app)

        @given(case=strategy)
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {vega_key}"}, checks=FUZZ_CHECKS)

        run()
