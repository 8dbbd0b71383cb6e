"""The OpenAPI 3.1 document of the client API, served at /api/v1/openapi.json.

Written by hand so it says exactly what the routes do; tests/api/test_openapi.py checks every route against it and
schemathesis fuzzes the running API with it.
"""

from __future__ import annotations

from typing import Any

from payment.app_webhooks import catalogue
from payment.config import Settings

# No control characters; the same rules payment/billing/customers.py enforces.
_NO_CONTROL = r"^[^\u0000-\u001f\u007f]*$"
_NOT_BLANK = r"^[^\u0000-\u001f\u007f]*[^\s\u0000-\u001f\u007f][^\u0000-\u001f\u007f]*$"
# \u0085 (NEL) is whitespace to the server (Python) but not to ECMAScript's \s: excluded here so both agree
_EMAIL = (
    r"^[^@\s\u0000-\u001f\u007f\u0085]+@[^@\s\u0000-\u001f\u007f\u0085]+"
    r"\.[^@\s\u0000-\u001f\u007f\u0085]+$"
)
_LOCALE = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$"

ERROR_CODES: dict[int, list[str]] = {
    400: ["invalid_json"],
    401: ["missing_api_key", "invalid_api_key"],
    403: ["app_mismatch"],
    404: ["app_not_found", "not_found"],  # not_found: a path no route matches (Starlette's own 404)
    413: ["payload_too_large"],
    415: ["unsupported_media_type"],
    422: ["validation_error"],
}

_SCHEMAS: dict[str, Any] = {
    "SessionRequest": {
        "type": "object",
        "required": ["externalUserId", "appSlug"],
        "properties": {
            "externalUserId": {
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "pattern": _NOT_BLANK,
                "description": "Your app's stable id for the user (the same across Aquoris apps).",
                "examples": ["user-42"],
            },
            "appSlug": {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "description": "Slug of the app the API key belongs to.",
                "examples": ["vega"],
            },
            "email": {"type": ["string", "null"], "maxLength": 320, "pattern": _EMAIL, "examples": ["ann@example.com"]},
            "name": {"type": ["string", "null"], "maxLength": 1024, "pattern": _NO_CONTROL},
            "locale": {
                "type": ["string", "null"],
                "maxLength": 16,
                "pattern": _LOCALE,
                "description": "Language of the billing page (en, th; others fall back to English).",
                "examples": ["th"],
            },
        },
    },
    "Session": {
        "type": "object",
        "required": ["id", "url", "expiresAt"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "url": {"type": "string", "format": "uri", "description": "Send the user here (single purpose)."},
            "expiresAt": {"type": "string", "format": "date-time"},
        },
    },
    "Entitlement": {
        "type": "object",
        "required": [
            "externalUserId",
            "appSlug",
            "plan",
            "status",
            "source",
            "paid",
            "currentPeriodEnd",
            "cancelAtPeriodEnd",
            "cancelsAt",
            "cancelAt",
            "pendingChange",
            "accessState",
            "graceEndsAt",
        ],
        "additionalProperties": False,
        "properties": {
            "externalUserId": {"type": "string"},
            "appSlug": {"type": "string"},
            "plan": {
                "type": "object",
                "required": ["slug", "name"],
                "additionalProperties": False,
                "properties": {"slug": {"type": "string"}, "name": {"type": "string"}},
            },
            "status": {
                "type": "string",
                "enum": ["free", "active", "trialing", "past_due"],
                "description": "`free` when there is no live paid subscription; `past_due` while Stripe "
                "retries a failed renewal (keep access, ask the user to update the card).",
            },
            "source": {"type": "string", "enum": ["free", "stripe", "manual", "grant"]},
            "paid": {"type": "boolean", "description": "true when a live paid subscription unlocks the plan."},
            "currentPeriodEnd": {"type": ["string", "null"], "format": "date-time"},
            "cancelAtPeriodEnd": {"type": "boolean"},
            "cancelsAt": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When a subscription set to end stops (Stripe's cancel_at, or the period "
                "end); null while it renews.",
            },
            "cancelAt": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "The same instant as `cancelsAt` (Stripe's name for it); null while the "
                "subscription renews.",
            },
            "pendingChange": {
                "type": ["object", "null"],
                "description": "A plan change the user scheduled for the end of the period (a downgrade): the "
                "plan it moves to and when. Keep unlocking the current `plan` until then; null when none.",
                "required": ["plan", "effectiveAt"],
                "additionalProperties": False,
                "properties": {
                    "plan": {
                        "type": "object",
                        "required": ["slug", "name"],
                        "additionalProperties": False,
                        "properties": {"slug": {"type": "string"}, "name": {"type": "string"}},
                    },
                    "effectiveAt": {"type": "string", "format": "date-time"},
                },
            },
            "accessState": {
                "type": "string",
                "enum": ["full", "grace", "blocked"],
                "description": "Unlock the plan's features on `full` and `grace`, not on `blocked`. "
                "`grace`: a renewal failed and the user keeps access until `graceEndsAt` "
                "while Stripe retries; `blocked`: the grace period is over and the "
                "invoice is still unpaid (apps whose policy is `free` see the free plan "
                "with `full` instead).",
            },
            "graceEndsAt": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When `grace` turns into `blocked`; null unless the state is `grace` or "
                "`blocked` (and while the failed invoice is not yet known).",
            },
        },
    },
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string", "enum": sorted({c for codes in ERROR_CODES.values() for c in codes})},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    },
}

_DESCRIPTIONS = {
    400: "The body is not valid JSON (`invalid_json`).",
    401: "Missing or invalid API key (`missing_api_key`, `invalid_api_key`).",
    403: "The API key belongs to another app (`app_mismatch`).",
    404: "No app with that slug (`app_not_found`).",
    413: "The body is larger than the limit (`payload_too_large`).",
    415: "The body is not JSON (`unsupported_media_type`).",
    422: "A field is missing, of the wrong type or out of bounds (`validation_error`); `errors` names it.",
}


def _problem(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS[status],
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
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
                        **{str(s): _problem(s) for s in (400, 401, 403, 404, 413, 415, 422)},
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
                            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": _NOT_BLANK},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The entitlement",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Entitlement"}}},
                        },
                        **{str(s): _problem(s) for s in (401, 422)},
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
            "schemas": {**_SCHEMAS, **_webhook_schemas()},
            "securitySchemes": {
                "appKey": {"type": "http", "scheme": "bearer", "description": "The app's API key (apk_...)."}
            },
        },
    }
