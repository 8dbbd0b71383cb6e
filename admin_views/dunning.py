"""Admin: dunning on the customer page (cases, notices, resend, extend grace) and the Outbox of end-user emails,
each shown rendered as the user gets it, plus a preview of every notice template in English and Thai."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqladmin import Admin, BaseView, expose
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from admin_views.formatting import when
from admin_views.operation_specs import OPERATIONS, ActContext, Field, Operation, Outcome, Target
from payment.admins.permissions import Permission
from payment.dunning import admin as dunning_admin
from payment.dunning import cases, notices
from payment.dunning.render import render
from payment.dunning.strings import LANGUAGES
from payment.errors import NotFound, ValidationError
from payment.runtime import Services, services_of

PREVIEW_LINK = "https://billing.example.com/billing/preview-link"
SAMPLE = {
    "invoiceId": 0,
    "amountCents": 29900,
    "currency": "thb",
    "plan": "Aquoris PRO",
    "graceEndsAt": "2026-12-11T09:00:00+00:00",
    "nextAttemptAt": "2026-12-07T09:00:00+00:00",
    "paidAt": "2026-12-04T09:00:00+00:00",
    "endedAt": "2026-12-04T09:00:00+00:00",
    "endsAt": "2027-01-04T09:00:00+00:00",
    "reference": "INV-0001",
}


def _whole(values: dict[str, str], name: str, label: str) -> int:
    raw = values.get(name, "").strip()
    if not raw.isdigit():
        raise ValidationError(f"{label} must be a whole number.", field=name)
    return int(raw)


@dataclass(frozen=True)
class ExtendGraceInput:
    case: int
    days: int


@dataclass(frozen=True)
class ResendInput:
    message: int


class ExtendGrace(Operation[ExtendGraceInput]):
    action, kind, title, button = "extend-grace", "customer", "Extend grace period", "Extend grace"
    permission = Permission.MANAGE_SUBSCRIPTIONS

    def fields(self, target: Target) -> list[Field]:
        return [
            Field("case", "Dunning case #", "number", required=True),
            Field(
                "days",
                "Extra days of full access",
                "number",
                required=True,
                value="7",
                help="Counted from the current grace end (or from now if it has passed); 1 to 60.",
            ),
        ]

    def parse(self, target: Target, values: dict[str, str]) -> ExtendGraceInput:
        return ExtendGraceInput(case=_whole(values, "case", "Dunning case"), days=_whole(values, "days", "Days"))

    def summary(self, target: Target, parsed: ExtendGraceInput) -> list[tuple[str, str]]:
        return [
            ("Customer", str(target.customer)),
            ("Dunning case", f"#{parsed.case}"),
            ("Extra days", str(parsed.days)),
        ]

    async def act(self, session: AsyncSession, target: Target, parsed: ExtendGraceInput, ctx: ActContext) -> Outcome:
        case = await cases.extend_grace(
            session, parsed.case, days=parsed.days, actor=ctx.actor, customer_id=target.customer.id
        )
        return {
            "level": "success",
            "message": f"Grace period of case #{case.id} extended to {when(case.grace_ends_at)}.",
        }


class ResendNotice(Operation[ResendInput]):
    action, kind, title, button = "resend-notice", "customer", "Resend notice", "Resend"
    permission = Permission.MANAGE_SUBSCRIPTIONS

    def fields(self, target: Target) -> list[Field]:
        return [Field("message", "Notice #", "number", required=True)]

    def parse(self, target: Target, values: dict[str, str]) -> ResendInput:
        return ResendInput(message=_whole(values, "message", "Notice"))

    def summary(self, target: Target, parsed: ResendInput) -> list[tuple[str, str]]:
        return [
            ("Customer", str(target.customer)),
            ("Notice", f"#{parsed.message}"),
            ("To", target.customer.email or "—"),
        ]

    async def act(self, session: AsyncSession, target: Target, parsed: ResendInput, ctx: ActContext) -> Outcome:
        message = await dunning_admin.resend_notice(session, target.customer.id, parsed.message, actor=ctx.actor)
        return {"level": "success", "message": f"Notice #{message.id} ({message.event_type}) will be sent again."}


for _op in (ExtendGrace(), ResendNotice()):
    OPERATIONS[_op.action] = _op


async def customer_context(session: AsyncSession, customer_id: int) -> dict[str, Any]:
    """What the customer page's dunning panel shows."""
    return {"dunning": await dunning_admin.customer_dunning(session, customer_id)}


class OutboxView(BaseView):
    name = "Outbox"
    identity = "outbox"
    icon = "fa-solid fa-envelope"

    async def _page(self, request: Request, template: str, context: dict[str, Any]) -> Response:
        response: Response = await self.templates.TemplateResponse(request, template, context)
        response.headers["Cache-Control"] = "no-store"
        return response

    @expose("/outbox", methods=["GET"], identity="outbox")
    async def index(self, request: Request) -> Response:
        async with services_of(request).db.session() as session:
            rows = await dunning_admin.recent_emails(session)
        return await self._page(
            request, "dunning/outbox.html", {"rows": rows, "notices": notices.NOTICES, "languages": LANGUAGES}
        )

    @expose("/outbox/{pk:int}", methods=["GET"], identity="outbox-email")
    async def email(self, request: Request) -> Response:
        async with services_of(request).db.session() as session:
            try:
                message = await dunning_admin.email(session, int(request.path_params["pk"]))
            except NotFound as exc:
                raise HTTPException(status_code=404, detail=exc.message) from None
        rendered = render(message.payload, link=PREVIEW_LINK)
        return await self._page(request, "dunning/email.html", {"message": message, "email": rendered})

    @expose("/outbox/preview/{notice}/{language}", methods=["GET"], identity="outbox-preview")
    async def preview(self, request: Request) -> Response:
        notice, language = request.path_params["notice"], request.path_params["language"]
        if notice not in notices.NOTICES or language not in LANGUAGES:
            raise HTTPException(status_code=404, detail="No such template.")
        payload = {
            "notice": notice,
            "to": "user@example.com",
            "name": "Dana",
            "locale": language,
            "customerId": 0,
            "appId": None,
            "data": SAMPLE,
        }
        return await self._page(
            request,
            "dunning/email.html",
            {"message": None, "email": render(payload, link=PREVIEW_LINK), "notice": notice},
        )


def register(admin: Admin, services: Services) -> None:
    """Add the Outbox page (the customer panel and its two actions need no view of their own)."""
    admin.add_view(OutboxView)
    # SQLAdmin names a base view after the last exposed route it registered; the menu must open the list
    OutboxView.identity = "outbox"
