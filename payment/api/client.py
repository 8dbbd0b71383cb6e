"""The client API under /api/v1: open a billing session for a user, read a user's entitlement.

Adapters only: parse and check the request, open the transaction, call the services, translate their errors into
problem details. Cheap checks that need no database (missing key, media type, size, JSON) come first.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from payment.api import openapi
from payment.api.problems import ApiProblem, FieldError, from_error
from payment.apps import service as apps
from payment.audit.service import app_actor
from payment.billing import customers, entitlements
from payment.billing_sessions import opening
from payment.billing_sessions import service as billing_sessions
from payment.errors import Forbidden, NotFound, PaymentError, Unauthorized, ValidationError
from payment.http import BodyTooLarge, read_limited
from payment.models import App
from payment.runtime import services_of

API_KEY_MAX_LENGTH = 256
APP_SLUG_MAX = 128
_JSON_MEDIA_RE = re.compile(r"^application/([a-z0-9.+-]*\+)?json$")


def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z, as the OpenAPI `date-time` format expects."""
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def bearer_key(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("Send the app's API key as `Authorization: Bearer <key>`.", code="missing_api_key")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > API_KEY_MAX_LENGTH:
        raise Unauthorized("Invalid API key.", code="invalid_api_key")
    return key


async def authenticate(request: Request, session: AsyncSession) -> App:
    return await apps.authenticate_key(session, bearer_key(request))


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object, read no further than `max_bytes`."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not _JSON_MEDIA_RE.match(media_type):
        raise ApiProblem(415, "unsupported_media_type", "Send the body as JSON with `Content-Type: application/json`.")
    too_large = ApiProblem(413, "payload_too_large", f"The request body must be at most {max_bytes} bytes.")
    try:
        raw = await read_limited(request, max_bytes)
    except BodyTooLarge:
        raise too_large from None
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiProblem(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiProblem(
            422,
            "validation_error",
            "The request body must be a JSON object.",
            errors=[FieldError("body", "must be a JSON object")],
        )
    return body


def _string(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ValidationError(f"{name} is required.", field=name)
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string.", field=name)
    return value


def _validation_problem(exc: ValidationError) -> ApiProblem:
    field = exc.field or "body"
    return ApiProblem(422, "validation_error", exc.message, errors=[FieldError(field, exc.message)])


def session_input(body: dict[str, Any]) -> tuple[customers.CustomerInput, str]:
    """The customer fields and the app slug of a POST /sessions body, checked."""
    try:
        app_slug = _string(body, "appSlug", required=True) or ""
        if not app_slug or len(app_slug) > APP_SLUG_MAX:
            raise ValidationError(f"appSlug must be 1 to {APP_SLUG_MAX} characters.", field="appSlug")
        data = customers.CustomerInput(
            external_user_id=_string(body, "externalUserId", required=True) or "",
            email=_string(body, "email"),
            name=_string(body, "name"),
            locale=_string(body, "locale"),
        ).validated()
    except ValidationError as exc:
        raise _validation_problem(exc) from None
    return data, app_slug


async def create_session(request: Request) -> Response:
    services = services_of(request)
    settings = services.settings
    try:
        key = bearer_key(request)
        body = await read_json_object(request, settings.max_body_bytes)
        created = await _open_in_one_statement(request, key, body)
        if created is not None:
            return _session_created(created)
        async with services.db.transaction() as session:
            app = await authenticate(request, session)
            data, app_slug = session_input(body)
            if app_slug != app.slug:
                known = apps.SLUG_RE.match(app_slug) is not None
                target = await apps.get_by_slug(session, app_slug) if known else None
                if target is None:
                    raise NotFound(f"No app with slug “{app_slug}”.", code="app_not_found")
                raise Forbidden("This API key belongs to another app.", code="app_mismatch")
            actor = app_actor(app.slug)
            customer = await customers.upsert(session, data, actor=actor)
            created = await billing_sessions.create(
                session,
                app=app,
                customer=customer,
                locale=data.locale,
                ttl_seconds=settings.session_ttl_seconds,
                base_url=settings.base_url,
                actor=actor,
            )
    except PaymentError as exc:
        return from_error(exc)
    return _session_created(created)


async def _open_in_one_statement(
    request: Request, key: str, body: dict[str, Any]
) -> billing_sessions.CreatedSession | None:
    """The hot path: a valid body for the key's own app opens the session in one round trip. None sends the
    request down the ORM path, which checks the key before the body and explains any refusal."""
    try:
        data, app_slug = session_input(body)
    except ApiProblem:
        return None
    if apps.SLUG_RE.match(app_slug) is None:  # never an app's: the ORM path answers 404
        return None
    services = services_of(request)
    settings = services.settings
    audit_key = services.db.audit_key
    if audit_key is None:
        return None
    return await services.db.on_driver(
        lambda conn: opening.open_session(
            conn,
            api_key=key,
            app_slug=app_slug,
            data=data,
            ttl_seconds=settings.session_ttl_seconds,
            base_url=settings.base_url,
            audit_key=audit_key,
        )
    )


def _session_created(created: billing_sessions.CreatedSession) -> JSONResponse:
    return JSONResponse(
        {"id": str(created.id), "url": created.url, "expiresAt": iso(created.expires_at)},
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


async def customer_subscription(request: Request) -> Response:
    services = services_of(request)
    try:
        async with services.db.session() as session:
            app = await authenticate(request, session)
            try:
                external_id = customers.check_external_user_id(request.path_params["externalUserId"])
            except ValidationError as exc:
                raise _validation_problem(exc) from None
            customer = await customers.get_by_external_id(session, external_id)
            ent = await entitlements.current(session, customer, app)
    except PaymentError as exc:
        return from_error(exc)
    return JSONResponse(
        entitlements.document(ent, external_user_id=external_id, app_slug=app.slug),
        headers={"Cache-Control": "no-store"},
    )


async def openapi_document(request: Request) -> Response:
    return JSONResponse(openapi.document(services_of(request).settings))


routes: list[BaseRoute] = [
    Route("/sessions", create_session, methods=["POST"]),
    Route("/customers/{externalUserId:path}/subscription", customer_subscription, methods=["GET"]),
    Route("/openapi.json", openapi_document, methods=["GET"]),
]
