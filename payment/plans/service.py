"""Plans: what the pricing page offers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from payment.admins.permissions import Permission, require
from payment.apps.service import check_slug
from payment.audit import service as audit
from payment.errors import Conflict, NotFound, ValidationError
from payment.models import Plan, utcnow
from payment.models.base import CURRENCIES, INTERVALS
from payment.models.promotions import TRIAL_END_BEHAVIORS

PRICE_ID_RE = re.compile(r"^price_[A-Za-z0-9_]+$")
MAX_PRICE_CENTS = 100_000_000_000
MAX_SORT_ORDER = 1_000_000
MAX_TRIAL_DAYS = 365


@dataclass
class PlanInput:
    slug: str
    name: str
    price_cents: int
    currency: str
    interval: str = "month"
    stripe_price_id: str | None = None
    description: str = ""
    features: list[str] = field(default_factory=list)
    sort_order: int = 0
    active: bool = True
    app_id: int | None = None
    trial_days: int = 0
    trial_requires_card: bool = True
    trial_end_behavior: str = "cancel"

    def validated(self) -> PlanInput:
        """The same input, normalised, or a ValidationError naming the first bad field."""
        name = self.name.strip()
        if not name:
            raise ValidationError("Name is required.", field="name")
        if len(name) > 1024:
            raise ValidationError("Name must be at most 1024 characters.", field="name")
        if self.price_cents < 0:
            raise ValidationError("Price must be 0 or more.", field="price_cents")
        if self.price_cents > MAX_PRICE_CENTS:
            raise ValidationError("Price is too large (at most 1,000,000,000.00).", field="price_cents")
        if abs(self.sort_order) > MAX_SORT_ORDER:
            raise ValidationError(
                f"Sort order must be between -{MAX_SORT_ORDER} and {MAX_SORT_ORDER}.", field="sort_order"
            )
        currency = self.currency.strip().lower()
        if currency not in CURRENCIES:
            raise ValidationError("Currency must be THB or USD.", field="currency")
        if self.interval not in INTERVALS:
            raise ValidationError("Interval must be month or year.", field="interval")
        price_id = (self.stripe_price_id or "").strip() or None
        if self.price_cents > 0 and price_id is None:
            raise ValidationError("A paid plan needs its Stripe Price ID (price_...).", field="stripe_price_id")
        if self.price_cents == 0 and price_id is not None:
            raise ValidationError("A free plan has no Stripe Price ID; leave it empty.", field="stripe_price_id")
        if price_id is not None and not PRICE_ID_RE.match(price_id):
            raise ValidationError("Stripe Price IDs look like price_1AbC...", field="stripe_price_id")
        if not 0 <= self.trial_days <= MAX_TRIAL_DAYS:
            raise ValidationError(f"Trial days must be between 0 and {MAX_TRIAL_DAYS}.", field="trial_days")
        if self.trial_days and self.price_cents == 0:
            raise ValidationError("A free plan has no trial; set the trial days to 0.", field="trial_days")
        if self.trial_end_behavior not in TRIAL_END_BEHAVIORS:
            raise ValidationError("At the end of a trial without a card: cancel or pause.", field="trial_end_behavior")
        features = [line.strip() for line in self.features if line.strip()]
        if any(len(line) > 200 for line in features) or len(features) > 30:
            raise ValidationError("Up to 30 feature lines of at most 200 characters each.", field="features")
        return PlanInput(
            slug=check_slug(self.slug),
            name=name,
            price_cents=self.price_cents,
            currency=currency,
            interval=self.interval,
            stripe_price_id=price_id,
            description=self.description.strip(),
            features=features,
            sort_order=self.sort_order,
            active=self.active,
            app_id=self.app_id,
            trial_days=self.trial_days,
            trial_requires_card=self.trial_requires_card,
            trial_end_behavior=self.trial_end_behavior,
        )


async def get_by_slug(session: AsyncSession, slug: str) -> Plan | None:
    return (await session.execute(select(Plan).where(Plan.slug == slug))).scalar_one_or_none()


async def _check_unique(session: AsyncSession, data: PlanInput, plan_id: int | None) -> None:
    same_slug = await get_by_slug(session, data.slug)
    if same_slug is not None and same_slug.id != plan_id:
        raise Conflict(f"A plan with slug “{data.slug}” already exists.", field="slug")
    if data.stripe_price_id is not None:
        same_price = (
            await session.execute(select(Plan).where(Plan.stripe_price_id == data.stripe_price_id))
        ).scalar_one_or_none()
        if same_price is not None and same_price.id != plan_id:
            raise Conflict(
                f"Stripe price {data.stripe_price_id} is already used by plan “{same_price.slug}”.",
                field="stripe_price_id",
            )


def _apply(plan: Plan, data: PlanInput) -> dict[str, object]:
    changes: dict[str, object] = {}
    for name in (
        "slug",
        "name",
        "price_cents",
        "currency",
        "interval",
        "stripe_price_id",
        "description",
        "features",
        "sort_order",
        "active",
        "app_id",
        "trial_days",
        "trial_requires_card",
        "trial_end_behavior",
    ):
        new = getattr(data, name)
        if getattr(plan, name, None) != new:
            changes[name] = new
            setattr(plan, name, new)
    return changes


async def create_plan(session: AsyncSession, data: PlanInput, *, actor: str, ip: str | None = None) -> Plan:
    """Add a plan after validating its fields and uniqueness."""
    require(actor, Permission.MANAGE_PLANS)
    data = data.validated()
    await _check_unique(session, data, None)
    plan = Plan()
    changes = _apply(plan, data)
    session.add(plan)
    await session.flush()
    await audit.record(
        session, actor=actor, action="plan.created", entity_type="plan", entity_id=plan.id, details=changes, ip=ip
    )
    return plan


async def update_plan(session: AsyncSession, plan: Plan, data: PlanInput, *, actor: str, ip: str | None = None) -> Plan:
    """Change a plan's fields; the audit row records what changed."""
    require(actor, Permission.MANAGE_PLANS)
    data = data.validated()
    await _check_unique(session, data, plan.id)
    changes = _apply(plan, data)
    await session.flush()
    if changes:
        await audit.record(
            session, actor=actor, action="plan.updated", entity_type="plan", entity_id=plan.id, details=changes, ip=ip
        )
    return plan


async def upsert_plan(session: AsyncSession, data: PlanInput, *, actor: str) -> Plan:
    """Create the plan, or bring an existing plan with that slug up to date (seeding)."""
    existing = await get_by_slug(session, data.slug.strip())
    if existing is None:
        return await create_plan(session, data, actor=actor)
    return await update_plan(session, existing, data, actor=actor)


async def get_plan(session: AsyncSession, plan_id: int) -> Plan:
    """The plan with this id, or NotFound."""
    plan = await session.get(Plan, plan_id)
    if plan is None:
        raise NotFound("No such plan.")
    return plan


async def all_plans(session: AsyncSession) -> list[Plan]:
    """Every plan with its app, the active ones first, as a form offers them."""
    plans = await session.scalars(
        select(Plan).options(selectinload(Plan.app)).order_by(Plan.active.desc(), Plan.sort_order, Plan.id)
    )
    return list(plans)


async def set_active(session: AsyncSession, plan: Plan, active: bool, *, actor: str, ip: str | None = None) -> Plan:
    """Take a plan off (or back onto) the pricing page; existing subscriptions keep it."""
    require(actor, Permission.MANAGE_PLANS)
    if plan.active != active:
        plan.active = active
        await session.flush()
        await audit.record(
            session,
            actor=actor,
            action="plan.activated" if active else "plan.deactivated",
            entity_type="plan",
            entity_id=plan.id,
            details={"slug": plan.slug},
            ip=ip,
        )
    return plan


def price_fingerprint(plan: Plan | PlanInput) -> tuple[str | None, int, str, str]:
    """What a Stripe price check compared: the price id, amount, currency and interval."""
    return plan.stripe_price_id, plan.price_cents, plan.currency, plan.interval


async def record_price_check(
    session: AsyncSession, plan_id: int, checked: tuple[str | None, int, str, str], problem: str | None
) -> None:
    """Remember how the plan compared with its Stripe price just now (None: it matches), for the plans list's
    warning; a plan edited since the check (another fingerprint) is left for the next check."""
    plan = await session.get(Plan, plan_id, with_for_update=True)
    if plan is not None and price_fingerprint(plan) == checked:
        plan.stripe_price_problem = problem
        plan.stripe_price_checked_at = utcnow()
        await session.flush()
