"""The plans an app offers: active plans that are suite-wide or scoped to that app."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.models import App, Plan


async def plans_for_app(session: AsyncSession, app: App) -> list[Plan]:
    """Active plans with no app or this app, in the admins' sort order."""
    query = (
        select(Plan)
        .where(Plan.active.is_(True), or_(Plan.app_id.is_(None), Plan.app_id == app.id))
        .order_by(Plan.sort_order, Plan.price_cents, Plan.id)
    )
    return list((await session.execute(query)).scalars())


async def free_plan(session: AsyncSession, app: App) -> Plan | None:
    """The app's free plan: an active plan priced 0, the app's own before a suite-wide one."""
    query = (
        select(Plan)
        .where(Plan.active.is_(True), Plan.price_cents == 0, or_(Plan.app_id.is_(None), Plan.app_id == app.id))
        .order_by(Plan.app_id.is_(None), Plan.sort_order, Plan.id)
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()
