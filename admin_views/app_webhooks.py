"""Admin: client apps' webhook endpoints (add, edit, enable/disable, rotate the secret, send a test event) and each
endpoint's delivery log with replay. Pages render; every change is one service call in payment.app_webhooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqladmin import Admin, BaseView, expose
from sqladmin.flash import Flash
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from admin_views.access import guard
from admin_views.service_views import Actor, run_service
from payment.admins.permissions import Permission
from payment.app_webhooks import catalogue, endpoints
from payment.apps import service as apps_service
from payment.errors import PaymentError, ValidationError
from payment.models import App, WebhookEndpoint
from payment.runtime import Services, services_of

LOG_PAGE = 50


async def _require_admin(request: Request) -> None:
    await guard(request, Permission.MANAGE_WEBHOOK_ENDPOINTS)


def _form_values(form: FormData) -> dict[str, Any]:
    return {
        "app_id": str(form.get("app_id") or ""),
        "url": str(form.get("url") or ""),
        "description": str(form.get("description") or ""),
        "event_types": [str(v) for v in form.getlist("event_types")],
    }


def _utc(value: str, field: str) -> datetime:
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        raise ValidationError("Enter a date and time (UTC).", field=field) from None


class WebhookEndpointsView(BaseView):
    name = "Webhook endpoints"
    identity = "webhook-endpoints"
    icon = "fa-solid fa-paper-plane"

    def _url(self, request: Request, pk: int | None = None) -> str:
        if pk is None:
            return str(request.url_for("admin:view-webhook-endpoints"))
        return str(request.url_for("admin:view-webhook-endpoint", pk=pk))

    async def _render(self, request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
        context.setdefault("event_types", catalogue.EVENT_TYPES)
        context.setdefault("descriptions", catalogue.DESCRIPTIONS)
        response: Response = await self.templates.TemplateResponse(request, template, context, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _list_page(
        self, request: Request, *, values: dict[str, Any] | None = None, error: PaymentError | None = None
    ) -> Response:
        async with services_of(request).db.session() as session:
            rows = await endpoints.all_with_apps(session)
            apps = await apps_service.all_apps(session)
        values = values or {"app_id": "", "url": "", "description": "", "event_types": list(catalogue.EVENT_TYPES)}
        return await self._render(
            request,
            "app_webhooks/endpoints.html",
            {
                "title": "Webhook endpoints",
                "rows": rows,
                "apps": apps,
                "values": values,
                "error": error.message if error else None,
                "error_field": getattr(error, "field", None),
            },
            status=422 if error else 200,
        )

    @expose("/webhook-endpoints", methods=["GET"], identity="webhook-endpoints")
    async def list_page(self, request: Request) -> Response:
        return await self._list_page(request)

    @expose("/webhook-endpoints/add", methods=["POST"], identity="webhook-endpoint-create")
    async def create(self, request: Request) -> Response:
        await _require_admin(request)
        values = _form_values(await request.form())
        settings = services_of(request).settings

        async def call(session: AsyncSession, who: Actor) -> endpoints.IssuedSecret:
            if not values["app_id"].isdigit():
                raise ValidationError("Choose the app.", field="app_id")
            return await endpoints.create(
                session,
                app_id=int(values["app_id"]),
                url=values["url"],
                event_types=values["event_types"],
                description=values["description"],
                production=settings.is_production,
                secret_key=settings.secret_key,
                actor=who.actor,
            )

        try:
            issued = await run_service(request, call)
        except PaymentError as exc:
            return await self._list_page(request, values=values, error=exc)
        return await self._secret_page(request, issued, "Endpoint added")

    async def _secret_page(self, request: Request, issued: endpoints.IssuedSecret, title: str) -> Response:
        # the secret is in this response only: never in a flash message, the session or a redirect URL
        return await self._render(
            request,
            "app_webhooks/secret.html",
            {
                "title": title,
                "secret": issued.secret,
                "endpoint": issued.endpoint,
                "endpoint_url": self._url(request, issued.endpoint.id),
            },
        )

    @expose("/webhook-endpoints/{pk:int}", methods=["GET"], identity="webhook-endpoint")
    async def detail(self, request: Request) -> Response:
        return await self._detail(request, int(request.path_params["pk"]))

    async def _detail(
        self, request: Request, pk: int, *, values: dict[str, Any] | None = None, error: PaymentError | None = None
    ) -> Response:
        before = request.query_params.get("before")
        async with services_of(request).db.session() as session:
            try:
                endpoint = await endpoints.get(session, pk)
            except PaymentError:
                raise HTTPException(status_code=404, detail="No such webhook endpoint.") from None
            app = await session.get_one(App, endpoint.app_id)
            log = await endpoints.deliveries(
                session, pk, limit=LOG_PAGE, before_id=int(before) if before and before.isdigit() else None
            )
        values = values or {
            "url": endpoint.url,
            "description": endpoint.description,
            "event_types": endpoint.event_types,
        }
        now = datetime.now(UTC)
        return await self._render(
            request,
            "app_webhooks/endpoint.html",
            {
                "title": f"Webhook endpoint #{endpoint.id}",
                "endpoint": endpoint,
                "app": app,
                "log": log,
                "values": values,
                "error": error.message if error else None,
                "error_field": getattr(error, "field", None),
                "list_url": self._url(request),
                "older": log[-1].id if len(log) == LOG_PAGE else None,
                "overlap_active": bool(
                    endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > now
                ),
                "range_from": (now - timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M"),
                "range_to": (now + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M"),
            },
            status=422 if error else 200,
        )

    async def _act(self, request: Request, call: Callable[[AsyncSession, Actor, FormData], Awaitable[str]]) -> Response:
        """One POST action: the service call, a flash with its outcome, back to the endpoint's page."""
        await _require_admin(request)
        pk = int(request.path_params["pk"])
        form = await request.form()
        try:
            message = await run_service(request, lambda session, who: call(session, who, form))
        except PaymentError as exc:
            Flash.error(request, exc.message)
        else:
            Flash.success(request, message)
        return RedirectResponse(self._url(request, pk), status_code=303)

    @expose("/webhook-endpoints/{pk:int}/edit", methods=["POST"], identity="webhook-endpoint-edit")
    async def edit(self, request: Request) -> Response:
        await _require_admin(request)
        pk = int(request.path_params["pk"])
        values = _form_values(await request.form())
        production = services_of(request).settings.is_production

        async def call(session: AsyncSession, who: Actor) -> WebhookEndpoint:
            return await endpoints.update(
                session,
                pk,
                url=values["url"],
                event_types=values["event_types"],
                description=values["description"],
                production=production,
                actor=who.actor,
            )

        try:
            await run_service(request, call)
        except PaymentError as exc:
            return await self._detail(request, pk, values=values, error=exc)
        Flash.success(request, "Endpoint saved.")
        return RedirectResponse(self._url(request, pk), status_code=303)

    @expose("/webhook-endpoints/{pk:int}/enabled", methods=["POST"], identity="webhook-endpoint-enabled")
    async def enabled(self, request: Request) -> Response:
        async def call(session: AsyncSession, who: Actor, form: FormData) -> str:
            on = form.get("enabled") == "yes"
            await endpoints.set_enabled(session, int(request.path_params["pk"]), on, actor=who.actor)
            return "Endpoint enabled; waiting deliveries go out in order." if on else "Endpoint disabled."

        return await self._act(request, call)

    @expose("/webhook-endpoints/{pk:int}/rotate", methods=["POST"], identity="webhook-endpoint-rotate")
    async def rotate(self, request: Request) -> Response:
        await _require_admin(request)
        form = await request.form()
        settings = services_of(request).settings
        hours = str(form.get("overlap_hours") or "24").strip()

        async def call(session: AsyncSession, who: Actor) -> endpoints.IssuedSecret:
            if not hours.isdigit():
                raise ValidationError("The overlap is a whole number of hours.", field="overlap_hours")
            return await endpoints.rotate_secret(
                session,
                int(request.path_params["pk"]),
                overlap=timedelta(hours=int(hours)),
                secret_key=settings.secret_key,
                actor=who.actor,
            )

        try:
            issued = await run_service(request, call)
        except PaymentError as exc:
            Flash.error(request, exc.message)
            return RedirectResponse(self._url(request, int(request.path_params["pk"])), status_code=303)
        return await self._secret_page(request, issued, "Signing secret rotated")

    @expose("/webhook-endpoints/{pk:int}/test", methods=["POST"], identity="webhook-endpoint-test")
    async def send_test(self, request: Request) -> Response:
        async def call(session: AsyncSession, who: Actor, form: FormData) -> str:
            message_id = await endpoints.send_test(session, int(request.path_params["pk"]), actor=who.actor)
            return f"Test event {message_id} queued; it appears in the log below within seconds."

        return await self._act(request, call)

    @expose("/webhook-endpoints/{pk:int}/replay", methods=["POST"], identity="webhook-endpoint-replay")
    async def replay(self, request: Request) -> Response:
        async def call(session: AsyncSession, who: Actor, form: FormData) -> str:
            pk = int(request.path_params["pk"])
            delivery = str(form.get("delivery_id") or "")
            if delivery.isdigit():
                count = await endpoints.replay(session, pk, delivery_id=int(delivery), actor=who.actor)
            else:
                count = await endpoints.replay(
                    session,
                    pk,
                    created_from=_utc(str(form.get("from") or ""), "from"),
                    created_to=_utc(str(form.get("to") or ""), "to"),
                    actor=who.actor,
                )
            return f"{count} deliver{'y' if count == 1 else 'ies'} will be sent again, in order."

        return await self._act(request, call)


def register(admin: Admin, services: Services) -> None:
    admin.add_base_view(WebhookEndpointsView)
    # SQLAdmin names a base view after the last exposed route it registered; the menu must open the list
    WebhookEndpointsView.identity = "webhook-endpoints"
