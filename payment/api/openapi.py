"""The OpenAPI 3.1 document of the client API, served at /api/v1/openapi.json.

The operations are written here; every schema comes from the models in payment/api/models.py, the same ones that
check the requests and build the responses, so the document and the checks cannot drift.
tests/integration/api/test_openapi.py checks every route against it and schemathesis fuzzes the running API with it.
"""

from __future__ import annotations

from typing import Any

from payment.api import models
from payment.app_webhooks import catalogue
from payment.config import Settings

_DESCRIPTIONS = {
    400: "The body is not valid JSON (`invalid_json`), or the query string holds a NUL character (`bad_request`).",
    401: "Missing or invalid API key (`missing_api_key`, `invalid_api_key`).",
    403: "The API key belongs to another app (`app_mismatch`).",
    404: "No app with that slug (`app_not_found`).",
    413: "The body is larger than the limit (`payload_too_large`).",
    415: "The body is not JSON (`unsupported_media_type`).",
    422: "A field is missing, of the wrong type or out of bounds (`validation_error`); `errors` names it.",
    503: "The database is unreachable or busy (`unavailable`): nothing was done; retry after `Retry-After` seconds.",
}


def _problem(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS[status],
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    if status == 503:
        response["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
    return response


_SIGNATURE_HEADERS = [
    {
        "name": "webhook-id",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": "The message id: the same on every retry and replay of one message; store it to drop repeats.",
    },
    {
        "name": "webhook-timestamp",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": "Unix seconds when this attempt was signed; refuse ones more than 5 minutes off.",
    },
    {
        "name": "webhook-signature",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": "Standard Webhooks signatures, space-separated `v1,<base64>` (two during a secret rotation).",
    },
]


def _event_schema_name(event_type: str) -> str:
    return "Event" + "".join(part.capitalize() for part in event_type.replace("_", ".").split("."))


def _webhooks() -> dict[str, Any]:
    """The outgoing webhooks a client app can receive (OpenAPI 3.1 `webhooks`), one per event type."""
    return {
        event_type: {
            "post": {
                "operationId": "on" + _event_schema_name(event_type)[len("Event") :],
                "summary": event_type,
                "description": catalogue.DESCRIPTIONS[event_type]
                + " Signed per Standard Webhooks; delivered in order per "
                "user, retried with back-off for about three days until your endpoint answers 2xx.",
                "parameters": _SIGNATURE_HEADERS,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{_event_schema_name(event_type)}"}
                        }
                    },
                },
                "responses": {
                    "2XX": {"description": "Received; anything else (or no answer within the timeout) is retried."}
                },
            }
        }
        for event_type in (*catalogue.EVENT_TYPES, catalogue.TEST)
    }


def _webhook_schemas() -> dict[str, Any]:
    return {
        **catalogue.DATA_SCHEMAS,
        **{_event_schema_name(t): catalogue.event_schema(t) for t in (*catalogue.EVENT_TYPES, catalogue.TEST)},
    }


def document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document, with this deployment's URL as its server."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Aquoris Payment client API",
            "version": "1.0.0",
            "description": "Open a hosted billing page for a signed-in user and read what the user may use. "
            "Authenticate with the app's API key (Admin > Apps) as a Bearer token. Errors are "
            "RFC 9457 problem details with a stable `code`.",
        },
        "servers": [{"url": f"{settings.base_url}/api/v1"}],
        "security": [{"appKey": []}],
        "paths": {
            "/sessions": {
                "post": {
                    "operationId": "createBillingSession",
                    "summary": "Open a billing session for a user and get the hosted page's URL",
                    "description": "Creates the customer on first use (email, name and locale given replace the "
                    "stored ones). The URL is valid until `expiresAt` (1 hour by default).",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SessionRequest"}}},
                    },
                    "responses": {
                        "201": {
                            "description": "The session",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Session"}}},
                        },
                        **{str(s): _problem(s) for s in (400, 401, 403, 404, 413, 415, 422, 503)},
                    },
                }
            },
            "/customers/{externalUserId}/subscription": {
                "get": {
                    "operationId": "getEntitlement",
                    "summary": "What the user may use in your app now",
                    "description": "The live paid subscription for your app (suite-wide plans included), or the free "
                    "plan when there is none, also for users never seen before.",
                    "parameters": [
                        {
                            "name": "externalUserId",
                            "in": "path",
                            "required": True,
                            "schema": models.parameter_schema(models.CustomerPath, "externalUserId"),
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The entitlement",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Entitlement"}}},
                        },
                        **{str(s): _problem(s) for s in (401, 422, 503)},
                        "404": {
                            **_problem(404),
                            "description": "Only for an id holding a line break, which no route "
                            "matches; such ids are invalid anyway.",
                        },
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "getOpenApiDocument",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "webhooks": _webhooks(),
        "components": {
            "schemas": {**models.SCHEMAS, **_webhook_schemas()},
            "securitySchemes": {
                "appKey": {"type": "http", "scheme": "bearer", "description": "The app's API key (apk_...)."}
            },
        },
    }
