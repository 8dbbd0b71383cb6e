"""The client API under /api/v1: open a billing session for a user, read a user's entitlement.

Adapters only: parse and check the request, open the transaction, call the services, translate their errors into
problem details. Cheap checks that need no database (missing key, media type, size, JSON) come first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from payment.api import models, openapi
from payment.api.problems import ApiProblem, from_error
from payment.apps import service as apps
from payment.audit.service import app_actor
from payment.billing import customers, entitlements
from payment.billing_sessions import opening
from payment.billing_sessions import service as billing_sessions
from payment.errors import Forbidden, NotFound, PaymentError, Unauthorized
from payment.http import BodyTooLarge, read_limited
from payment.models import App
from payment.runtime import Services, services_of

API_KEY_MAX_LENGTH = 256
APP_SLUG_MAX = 128
_JSON_MEDIA_RE = re.compile(r"^application/([a-z0-9.+-]*\+)?json$")
_NO_STORE = {"Cache-Control": "no-store"}


def bearer_key(header: str | None) -> str:
    """The API key of an `Authorization` header."""
    if not header:
        raise Unauthorized("Send the app's API key as `Authorization: Bearer <key>`.", code="missing_api_key")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > API_KEY_MAX_LENGTH:
        raise Unauthorized("Invalid API key.", code="invalid_api_key")
    return key


async def authenticate(request: Request, session: AsyncSession) -> App:
    return await apps.authenticate_key(session, bearer_key(request.headers.get("authorization")))


async def read_json(content_type: str | None, read_body: Callable[[int], Awaitable[bytes]], max_bytes: int) -> Any:
    """The body as a JSON value, read no further than `max_bytes` by `read_body` (which raises BodyTooLarge past
    it); the model says whether its shape is right."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if not _JSON_MEDIA_RE.match(media_type):
        raise ApiProblem(415, "unsupported_media_type", "Send the body as JSON with `Content-Type: application/json`.")
    too_large = ApiProblem(413, "payload_too_large", f"The request body must be at most {max_bytes} bytes.")
    try:
        raw = await read_body(max_bytes)
    except BodyTooLarge:
        raise too_large from None
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiProblem(400, "invalid_json", "The request body is not valid JSON.") from None
    return body


def session_input(body: Any) -> tuple[customers.CustomerInput, str]:
    """The customer fields and the app slug of a POST /sessions body, checked by its model."""
    parsed = models.SessionRequest.parse(body)
    return parsed.customer(), parsed.app_slug


async def create_session(request: Request) -> Response:
    """POST /sessions through the router (payment/api/fastpath.py serves it in front of the router and the page
    middleware, with the same `open_session`)."""
    answer = await open_session(
        services_of(request),
        request.headers.get("authorization"),
        request.headers.get("content-type"),
        lambda limit: read_limited(request, limit),
    )
    return answer if isinstance(answer, Response) else _session_created(answer)


async def open_session(
    services: Services,
    authorization: str | None,
    content_type: str | None,
    read_body: Callable[[int], Awaitable[bytes]],
) -> billing_sessions.CreatedSession | Response:
    """The session a POST /sessions opens, or the problem+json answer refusing it. Cheap checks first (key present,
    media type, size, JSON), then the one-statement hot path, then the ORM path for anything off it."""
    settings = services.settings
    try:
        key = bearer_key(authorization)
        body = await read_json(content_type, read_body, settings.max_body_bytes)
        try:
            data, app_slug = session_input(body)
        except ApiProblem as refused:  # told after the key is checked: a wrong key is a 401 whatever the body
            checked: tuple[customers.CustomerInput, str] | ApiProblem = refused
        else:
            checked = data, app_slug
            created = await _open_in_one_statement(services, key, data, app_slug)
            if created is not None:
                return created
        async with services.db.transaction() as session:
            app = await apps.authenticate_key(session, key)
            if isinstance(checked, ApiProblem):
                raise checked
            data, app_slug = checked
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
    return created


async def _open_in_one_statement(
    services: Services, key: str, data: customers.CustomerInput, app_slug: str
) -> billing_sessions.CreatedSession | None:
    """The hot path: a valid body for the key's own app opens the session in one round trip. None sends the
    request down the ORM path, which explains any refusal."""
    if apps.SLUG_RE.match(app_slug) is None:  # never an app's: the ORM path answers 404
        return None
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


def _session_created(created: billing_sessions.CreatedSession) -> Response:
    body = models.Session(id=created.id, url=created.url, expires_at=created.expires_at)
    return Response(body.json_bytes(), status_code=201, media_type="application/json", headers=_NO_STORE)


async def customer_subscription(request: Request) -> Response:
    services = services_of(request)
    try:
        async with services.db.session() as session:
            app = await authenticate(request, session)
            path = models.CustomerPath.parse({"externalUserId": request.path_params["externalUserId"]})
            external_id = path.external_user_id
            customer = await customers.get_by_external_id(session, external_id)
            ent = await entitlements.current(session, customer, app)
    except PaymentError as exc:
        return from_error(exc)
    document = entitlements.document(ent, external_user_id=external_id, app_slug=app.slug)
    body = models.Entitlement.model_validate(document)
    return Response(body.json_bytes(), media_type="application/json", headers=_NO_STORE)


async def openapi_document(request: Request) -> Response:
    return JSONResponse(openapi.document(services_of(request).settings))


routes: list[BaseRoute] = [
    Route("/sessions", create_session, methods=["POST"]),
    Route("/customers/{externalUserId:path}/subscription", customer_subscription, methods=["GET"]),
    Route("/openapi.json", openapi_document, methods=["GET"]),
]
