"""The reconciliation actions as operations (the same nonce, CSRF, confirm and audit flow as the billing actions):
take Stripe's values for a drift, or ignore it with a reason."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from admin_views.operation_specs import ActContext, Field, Operation, Outcome, Target
from payment.admins.permissions import Permission
from payment.reconciliation import service as reconciliation
from payment.stripe.reader import JSON


@dataclass(frozen=True)
class TakeStripesInput:
    stripe_side: dict[str, JSON] | None = None  # read from Stripe once confirmed, before the transaction


@dataclass(frozen=True)
class IgnoreInput:
    reason: str


DriftInput = TypeVar("DriftInput", TakeStripesInput, IgnoreInput)


def _values(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {json.dumps(v)}" for k, v in values.items()) or "—"


def _drift_summary(target: Target) -> list[tuple[str, str]]:
    drift = target.drift
    assert drift is not None
    return [
        ("What", f"{reconciliation.KIND_LABELS[drift.kind]} — {drift.stripe_object_id}"),
        ("Ours", _values(drift.ours)),
        ("Stripe's", _values(drift.theirs)),
        ("Expected event", drift.expected_event),
    ]


class DriftOperation(Operation[DriftInput]):
    kind = "drift"
    permission = Permission.RECONCILE

    def unavailable(self, target: Target) -> str:
        drift = target.drift
        if drift is not None and drift.state != "open":
            return f"Drift #{drift.id} is already {drift.state}."
        return ""


class TakeStripes(DriftOperation[TakeStripesInput]):
    action, title, button, confirm_button = "take-stripes", "Take Stripe's values", "Take Stripe's", "Take Stripe's"

    def parse(self, target: Target, values: dict[str, str]) -> TakeStripesInput:
        return TakeStripesInput()

    def summary(self, target: Target, parsed: TakeStripesInput) -> list[tuple[str, str]]:
        return [*_drift_summary(target), ("Effect", "Our rows become Stripe's, as the missed webhook would have")]

    async def prepare(self, target: Target, parsed: TakeStripesInput, ctx: ActContext) -> TakeStripesInput:
        assert target.drift is not None
        side = await reconciliation.fetch_stripe_side(ctx.gateway, target.drift)
        return dataclasses.replace(parsed, stripe_side=side)

    async def act(self, session: AsyncSession, target: Target, parsed: TakeStripesInput, ctx: ActContext) -> Outcome:
        assert target.drift is not None and parsed.stripe_side is not None
        drift = await reconciliation.take_stripes(
            session, target.drift.id, parsed.stripe_side, ctx.gateway, actor=ctx.actor, ip=ctx.ip
        )
        return {"level": "success", "message": f"Drift #{drift.id}: our books now match Stripe's."}


class IgnoreDrift(DriftOperation[IgnoreInput]):
    action, title, button, confirm_button = "ignore-drift", "Ignore drift", "Ignore", "Ignore"

    def fields(self, target: Target) -> list[Field]:
        return [
            Field(
                "reason",
                "Reason",
                "textarea",
                required=True,
                attrs={"maxlength": "2000"},
                help="Why our books stay as they are. Later checks keep this drift ignored.",
            )
        ]

    def parse(self, target: Target, values: dict[str, str]) -> IgnoreInput:
        return IgnoreInput(reason=reconciliation.check_reason(values.get("reason")))

    def summary(self, target: Target, parsed: IgnoreInput) -> list[tuple[str, str]]:
        return [*_drift_summary(target), ("Reason", parsed.reason)]

    async def act(self, session: AsyncSession, target: Target, parsed: IgnoreInput, ctx: ActContext) -> Outcome:
        assert target.drift is not None
        drift = await reconciliation.ignore(session, target.drift.id, parsed.reason, actor=ctx.actor, ip=ctx.ip)
        return {"level": "success", "message": f"Drift #{drift.id} is ignored."}


DRIFT_OPERATIONS: dict[str, Operation[Any]] = {op.action: op for op in (TakeStripes(), IgnoreDrift())}
