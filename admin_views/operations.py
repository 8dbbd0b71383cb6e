"""Admin billing actions (cancel, resume, extend, grant, record payment, refund, retry cancellation).

Each action is a form page under /admin/operations/{kind}/{id}/{action}: GET shows the form with a one-time nonce,
POST validates and shows a confirmation, the confirmed POST claims the nonce and calls one service in one
transaction, then redirects to the customer page with the outcome. A repeated nonce (double click, resubmit) shows
the first outcome instead of acting twice; CSRF is checked by admin_views.csrf before any of this runs.
"""

from __future__ import annotations

import logging
from typing import Any

from sqladmin import Admin, BaseView, expose
from sqladmin.flash import flash
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from admin_views.access import guard, refuse
from admin_views.auth import current_admin_actor
from admin_views.drift_operations import DRIFT_OPERATIONS
from admin_views.operation_specs import (
    OPERATIONS,
    ActContext,
    Field,
    Operation,
    Outcome,
    Target,
    cancellation_outcome,
)
from admin_views.transactions import admin_transaction, database_errors
from admin_views.two_factor import step_up_redirect
from payment.admins.permissions import PermissionDenied
from payment.customers import service as customers
from payment.errors import NotFound, PaymentError
from payment.plans import service as plans
from payment.reconciliation import service as reconciliation
from payment.refunds import service as refunds
from payment.runtime import Services, services_of
from payment.submissions import service as submissions
from payment.subscriptions import service as subscriptions

log = logging.getLogger(__name__)
# the reconciliation actions share this flow (registered beside the billing ones)
OPERATIONS.update(DRIFT_OPERATIONS)


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def load_target(session: AsyncSession, op: Operation[Any], pk: int) -> Target:
    """The rows a form needs (read-only; the service re-reads and locks them when it acts)."""
    if op.kind == "customer":
        return Target(customer=await customers.get(session, pk), plans=await plans.all_plans(session))
    if op.kind == "subscription":
        sub = await subscriptions.get(session, pk)
        active = [plan for plan in await plans.all_plans(session) if plan.active]
        return Target(customer=sub.customer, subscription=sub, plans=active)
    if op.kind == "drift":
        drift = await reconciliation.get(session, pk)
        return Target(customer=await customers.get(session, drift.customer_id), drift=drift)
    if op.kind == "invoice":
        invoice = await refunds.get_invoice(session, pk)
        return Target(
            customer=invoice.customer,
            invoice=invoice,
            refundable_cents=await refunds.refundable_cents(session, invoice),
        )
    refund = await refunds.get_refund(session, pk)
    return Target(customer=refund.invoice.customer, invoice=refund.invoice, refund=refund)


def customer_url(request: Request, customer_id: int) -> str:
    return str(request.url_for("admin:details", identity="customer", pk=customer_id))


def back_url(request: Request, op: Operation[Any], target: Target) -> str:
    """Where the form's Cancel and the outcome lead: the reconciliation screen for a drift, else the customer."""
    if op.kind == "drift":
        return str(request.url_for("admin:view-reconciliation"))
    return customer_url(request, target.customer.id)


class OperationsView(BaseView):
    name = "Operations"
    identity = "operations"

    def is_visible(self, request: Request) -> bool:
        return False  # reached from the customer page's buttons, not the menu

    @expose("/operations/{kind}/{pk:int}/{action}", methods=["GET", "POST"], identity="operation")
    async def operation(self, request: Request) -> Response:
        op = OPERATIONS.get(request.path_params["action"])
        if op is None or op.kind != request.path_params["kind"]:
            raise HTTPException(status_code=404, detail="No such action.")
        await guard(request, op.permission)
        if op.step_up and (stale := step_up_redirect(request, request.url.path)) is not None:
            return stale
        services = services_of(request)
        try:
            async with services.db.session() as session:
                target = await load_target(session, op, int(request.path_params["pk"]))
        except NotFound as exc:
            raise HTTPException(status_code=404, detail=exc.message) from None
        if request.method == "GET":
            return await self._form(request, op, target, {"nonce": submissions.new_nonce()})
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        return await self._submit(request, services, op, target, values)

    async def _submit(
        self, request: Request, services: Services, op: Operation[Any], target: Target, values: dict[str, str]
    ) -> Response:
        try:
            nonce = submissions.check_nonce(values.get("nonce"))
            parsed = op.parse(target, values)
            if values.get("confirm") != "yes":
                async with services.db.session() as session:
                    await op.precheck(session, target, parsed)
                parsed, carried = await op.preview(
                    services.db, target, parsed, services.stripe, current_admin_actor(request)
                )
                values.update(carried)
        except PaymentError as exc:
            return await self._form(request, op, target, values, exc, status_code=422)
        if values.get("confirm") != "yes":
            return await self._confirm(request, op, target, values, parsed)
        ctx = ActContext(gateway=services.stripe, actor=current_admin_actor(request), ip=_ip(request), nonce=nonce)
        try:
            parsed = await op.prepare(target, parsed, ctx)
        except PaymentError as exc:
            return await self._form(request, op, target, values, exc, status_code=422)
        try:
            if op.outside_transaction:
                first, outcome = await self._act_outside(request, services, op, target, parsed, ctx)
            else:
                async with admin_transaction(services.db, request.url.path) as session:
                    first = await submissions.claim(session, nonce, action=op.action, actor=ctx.actor)
                    if first is None:
                        outcome = await op.act(session, target, parsed, ctx)
                        outcome.setdefault("redirect", back_url(request, op, target))
                        await submissions.settle(session, nonce, outcome)
        except PermissionDenied as denied:
            await refuse(request, denied)
        except PaymentError as exc:
            # nothing was written (rolled back, or the nonce given back): the same form can be sent again
            return await self._form(request, op, target, values, exc, status_code=422)
        if first is not None:
            first = {**first, "message": "Already done (this form was submitted twice): " + first["message"]}
            return self._done(request, first, back_url(request, op, target))
        if outcome.get("send_to_stripe"):
            outcome = await self._send_refund(services, outcome, ctx)
        if outcome.get("also_cancel"):
            outcome = await self._cancel_after_refund(services, outcome, ctx)
        return self._done(request, outcome, outcome["redirect"])

    @staticmethod
    async def _act_outside(
        request: Request, services: Services, op: Operation[Any], target: Target, parsed: object, ctx: ActContext
    ) -> tuple[Outcome | None, Outcome]:
        """An action that calls Stripe: the nonce is claimed in a short transaction of its own, the service runs
        with no transaction open, and the outcome is settled in another; a refusal gives the nonce back."""
        async with admin_transaction(services.db, request.url.path) as session:
            first = await submissions.claim(session, ctx.nonce, action=op.action, actor=ctx.actor)
        if first is not None:
            return first, {}
        try:
            async with database_errors(request.url.path):
                outcome = await op.act_outside(services.db, target, parsed, ctx)
        except Exception:
            async with admin_transaction(services.db, request.url.path) as session:
                await submissions.release(session, ctx.nonce)
            raise
        outcome.setdefault("redirect", back_url(request, op, target))
        async with admin_transaction(services.db, request.url.path) as session:
            await submissions.settle(session, ctx.nonce, outcome)
        return None, outcome

    @staticmethod
    async def _send_refund(services: Services, outcome: Outcome, ctx: ActContext) -> Outcome:
        """The pending refund is committed; now Stripe, outside any transaction. A refusal fails the refund (it no
        longer counts as pending) and skips the cancellation that was to follow it."""
        refund = await refunds.send_to_stripe(
            services.db, ctx.gateway, int(outcome["refund_id"]), actor=ctx.actor, ip=ctx.ip
        )
        if refund.status == "failed":
            outcome = {
                **outcome,
                "level": "error",
                "also_cancel": False,
                "message": f"Stripe refused refund #{refund.id}: {refund.failure_reason} Nothing was refunded.",
            }
        else:
            outcome = {**outcome, "send_to_stripe": False}
        async with services.db.transaction() as session:
            await submissions.settle(session, ctx.nonce, outcome)
        return outcome

    @staticmethod
    async def _cancel_after_refund(services: Services, outcome: Outcome, ctx: ActContext) -> Outcome:
        """The refund is committed; now the immediate cancellation (a Stripe turn, no transaction open), which
        records a failure on the refund instead of undoing it."""
        try:
            async with database_errors("the cancellation after a refund"):
                refund = await refunds.cancel_after_refund(
                    services.db, int(outcome["refund_id"]), gateway=ctx.gateway, actor=ctx.actor, ip=ctx.ip
                )
            outcome = cancellation_outcome(refund, outcome)
            async with admin_transaction(services.db, "the cancellation after a refund") as session:
                await submissions.settle(session, ctx.nonce, outcome)
        except PaymentError as exc:
            outcome = {
                **outcome,
                "level": "warning",
                "message": outcome["message"] + " The refund is recorded, "
                f"but cancelling the subscription failed: {exc.message}",
            }
        return outcome

    @staticmethod
    def _done(request: Request, outcome: Outcome, redirect: str) -> Response:
        flash(request, str(outcome.get("message", "")), str(outcome.get("level", "info")))
        # sqladmin appends to the stored list in place, which the session does not notice as a change
        request.session["_messages"] = list(request.session.get("_messages", []))
        return RedirectResponse(str(outcome.get("redirect") or redirect), status_code=303)

    async def _form(
        self,
        request: Request,
        op: Operation[Any],
        target: Target,
        values: dict[str, str],
        error: PaymentError | None = None,
        *,
        status_code: int = 200,
    ) -> Response:
        fields = op.fields(target)
        for f in fields:
            if f.name in values:
                f.value = values[f.name]
            if error is not None and error.field == f.name:
                f.error = error.message
        general = error.message if error is not None and error.field not in {f.name for f in fields} else ""
        general = general or op.unavailable(target)
        # a grant refused because of a live subscription offers to replace it
        needs_replace = error is not None and error.code == "replace_needed"
        if needs_replace:
            fields.append(
                Field(
                    "replace",
                    "Replace the customer's live subscription in this scope",
                    "checkbox",
                    help="It ends now (a Stripe subscription is canceled on Stripe).",
                )
            )
        elif values.get("replace") == "yes":
            fields.append(Field("replace", "", "hidden", value="yes"))
        return await self._render(
            request,
            "operations/form.html",
            op,
            target,
            status_code,
            fields=fields,
            general_error=general,
            nonce=values.get("nonce") or submissions.new_nonce(),
        )

    async def _confirm(
        self, request: Request, op: Operation[Any], target: Target, values: dict[str, str], parsed: object
    ) -> Response:
        hidden = {k: v for k, v in values.items() if k not in ("confirm", "csrf_token")}
        return await self._render(
            request, "operations/confirm.html", op, target, 200, hidden=hidden, summary=op.summary(target, parsed)
        )

    async def _render(
        self, request: Request, template: str, op: Operation[Any], target: Target, status_code: int, **context: Any
    ) -> Response:
        response: Response = await self.templates.TemplateResponse(
            request,
            template,
            {
                "op": op,
                "target": target,
                "customer": target.customer,
                "back_url": back_url(request, op, target),
                **context,
            },
            status_code=status_code,
        )
        response.headers["Cache-Control"] = "no-store"
        return response


def register(admin: Admin, services: Services) -> None:
    """Add this module's views to the admin."""
    admin.add_view(OperationsView)
