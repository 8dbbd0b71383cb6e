"""Subscription schedules: create from a subscription, retrieve, list, update phases, release and cancel."""

from __future__ import annotations

from ..api import Ctx, route
from ..billing import cancel_now
from ..errors import StripeError, invalid, missing, not_found
from ..forms import get_list, get_str, merge_metadata
from ..listing import paginate
from ..prorations import proration_behavior
from ..schedules import END_BEHAVIORS, LIVE, release, schedule_from_subscription, set_phases
from ..store import JSON


def _subscription(ctx: Ctx, sched: JSON) -> JSON | None:
    sub_id = sched.get("subscription")
    return ctx.store.get("subscription", sub_id) if sub_id else None


def _live(sched: JSON, verb: str) -> None:
    if sched["status"] not in LIVE:
        raise StripeError(
            400, f"You cannot {verb} a subscription schedule that is {sched['status']}.", code="schedule_invalid_state"
        )


@route("POST", "/v1/subscription_schedules")
def create_schedule(ctx: Ctx) -> JSON:
    sub_id = get_str(ctx.params, "from_subscription")
    if sub_id is None:
        if get_str(ctx.params, "customer"):
            raise invalid("customer", "The sandbox creates subscription schedules only `from_subscription`.")
        raise missing("from_subscription")
    sub = ctx.store.get("subscription", sub_id)
    if sub is None:
        raise not_found("subscription", sub_id, "from_subscription")
    sched = ctx.store.add(schedule_from_subscription(ctx.store, sub))
    sched["metadata"] = merge_metadata({}, ctx.params)
    ctx.store.emit("subscription_schedule.created", sched)
    sub["schedule"] = sched["id"]
    ctx.store.emit("customer.subscription.updated", sub, {"schedule": None})
    return sched


@route("GET", "/v1/subscription_schedules/{id}")
def retrieve_schedule(ctx: Ctx) -> JSON:
    return ctx.load("subscription_schedule")


@route("GET", "/v1/subscription_schedules")
def list_schedules(ctx: Ctx) -> JSON:
    customer = get_str(ctx.params, "customer")
    items = [s for s in ctx.store.all("subscription_schedule") if customer is None or s["customer"] == customer]
    return paginate(items, ctx.params, "/v1/subscription_schedules")


@route("POST", "/v1/subscription_schedules/{id}")
def update_schedule(ctx: Ctx) -> JSON:
    sched = ctx.load("subscription_schedule")
    _live(sched, "update")
    p = ctx.params
    previous: JSON = {}
    end_behavior = get_str(p, "end_behavior")
    if end_behavior is not None:
        if end_behavior not in END_BEHAVIORS:
            raise invalid("end_behavior", f"Invalid end_behavior: must be one of {', '.join(END_BEHAVIORS)}")
        previous["end_behavior"] = sched["end_behavior"]
        sched["end_behavior"] = end_behavior
    if "metadata" in p:
        previous["metadata"] = dict(sched["metadata"])
        sched["metadata"] = merge_metadata(sched["metadata"], p)
    if "phases" in p:
        sub = _subscription(ctx, sched)
        assert sub is not None
        previous["phases"] = sched["phases"]
        set_phases(ctx.store, sched, sub, get_list(p, "phases"), proration_behavior(p))
    if previous:
        ctx.store.emit("subscription_schedule.updated", sched, previous)
    return sched


@route("POST", "/v1/subscription_schedules/{id}/release")
def release_schedule(ctx: Ctx) -> JSON:
    sched = ctx.load("subscription_schedule")
    _live(sched, "release")
    release(ctx.store, sched, _subscription(ctx, sched))
    return sched


@route("POST", "/v1/subscription_schedules/{id}/cancel")
def cancel_schedule(ctx: Ctx) -> JSON:
    sched = ctx.load("subscription_schedule")
    _live(sched, "cancel")
    sub = _subscription(ctx, sched)
    if sub is not None and sub["status"] not in ("canceled", "incomplete_expired"):
        # Canceling a schedule cancels its subscription at once; end_with_subscription then cancels the schedule.
        cancel_now(ctx.store, sub, ctx.store.now())
    else:
        sched.update(status="canceled", canceled_at=ctx.store.now(), current_phase=None)
        ctx.store.emit("subscription_schedule.canceled", sched, {"status": "active", "canceled_at": None})
    return sched
