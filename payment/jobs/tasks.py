"""Background tasks (blueprint); job bodies open a transaction and call one service.

Task names are explicit and namespaced `payment:` by the app. Every task has a retry strategy; periodic tasks
also run again on their next tick.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import procrastinate

from payment.admins import sessions as admin_sessions
from payment.app_webhooks import delivery as webhook_delivery
from payment.audit.chain import chain_key
from payment.audit.verify import check_and_record
from payment.billing_sessions.service import purge_expired
from payment.documents import runner
from payment.dunning import card_retry
from payment.dunning import channel as email_delivery
from payment.jobs.context import services_of_job
from payment.jobs.periodic import expire_due_subscriptions
from payment.jobs.stripe_events import (
    APPLY_EVENT,
    EVENT_RETRY,
    apply_stripe_event,
    catch_up_stripe_events,
    sweep_stripe_events,
)
from payment.models import utcnow
from payment.reconciliation.check import CHECK_LOCK, CHECK_NOW_TASK, report_stale, run_check
from payment.refunds import service as refunds
from payment.submissions.service import purge
from payment.subscriptions import trials

log = logging.getLogger(__name__)

PERIODIC_RETRY = procrastinate.RetryStrategy(max_attempts=2, wait=5)
STALLED_AFTER_SECONDS = 15.0
FORM_NONCE_RETENTION = timedelta(days=30)


async def send_unsent_refunds(context: procrastinate.JobContext, timestamp: int) -> None:
    services = services_of_job(context)
    count = await refunds.send_unsent(services.db, services.stripe)
    if count:
        log.info("sent %s Stripe refunds that were recorded but not sent", count)


async def expire_subscriptions(context: procrastinate.JobContext, timestamp: int) -> None:
    async with services_of_job(context).db.transaction() as session:
        count = await expire_due_subscriptions(session, now=utcnow())
    if count:
        log.info("expired %s manual or granted subscriptions", count)


async def purge_billing_sessions(context: procrastinate.JobContext, timestamp: int) -> None:
    async with services_of_job(context).db.transaction() as session:
        count = await purge_expired(session, now=utcnow())
    if count:
        log.info("purged %s expired billing sessions", count)


async def prune_admin_sessions(context: procrastinate.JobContext, timestamp: int) -> None:
    """Admin sessions that ended (signed out, revoked, idle or too old) more than 30 days ago."""
    services = services_of_job(context)
    lifetime = admin_sessions.Lifetime(
        idle=timedelta(seconds=services.settings.admin_session_idle_seconds),
        absolute=timedelta(seconds=services.settings.admin_session_max_age),
    )
    async with services.db.transaction() as session:
        count = await admin_sessions.prune(session, lifetime=lifetime, now=utcnow())
    if count:
        log.info("pruned %s ended admin sessions", count)


async def purge_form_submissions(context: procrastinate.JobContext, timestamp: int) -> None:
    """One-time form nonces older than 30 days guard no open form any more."""
    async with services_of_job(context).db.transaction() as session:
        count = await purge(session, older_than=utcnow() - FORM_NONCE_RETENTION)
    if count:
        log.info("purged %s old form nonces", count)


async def issue_documents(context: procrastinate.JobContext, timestamp: int) -> None:
    """Tax invoices, credit notes and replacements that are due get their numbers, then their PDFs."""
    await runner.run(services_of_job(context).db)


async def issue_documents_now(context: procrastinate.JobContext) -> None:
    """The same work on demand (after buyer details change, or from the admin), without waiting for the tick."""
    await runner.run(services_of_job(context).db)


async def deliver_webhooks(context: procrastinate.JobContext, timestamp: int) -> None:
    """Client apps' webhooks that are due (new, or waiting for their retry) go out, in order per user."""
    services = services_of_job(context)
    await webhook_delivery.deliver(services.db, services.settings)


async def deliver_emails(context: procrastinate.JobContext, timestamp: int) -> None:
    """End users' notices that are due go out through SMTP, with retries and back-off."""
    services = services_of_job(context)
    await email_delivery.deliver(services.db, services.settings)


async def retry_updated_cards(context: procrastinate.JobContext, timestamp: int) -> None:
    """Open failed invoices are charged again at once when the end user saved a new card."""
    services = services_of_job(context)
    await card_retry.retry_now(services.db, services.stripe)


async def queue_dunning_notices(context: procrastinate.JobContext, timestamp: int) -> None:
    """Grace-ending and access-blocked notices are queued when their time comes."""
    await email_delivery.queue_time_notices(services_of_job(context).db)


async def verify_audit_chain(context: procrastinate.JobContext, timestamp: int) -> None:
    """Daily: a broken audit chain is logged as an error (Sentry) and shown on the dashboard."""
    services = services_of_job(context)
    await check_and_record(services.db, key=chain_key(services.settings.audit_chain_secret))


async def _reconcile(context: procrastinate.JobContext) -> None:
    services = services_of_job(context)
    await run_check(services.db, services.stripe, concurrency=services.settings.reconciliation_concurrency)
    await report_stale(services.db)


async def reconcile_with_stripe(context: procrastinate.JobContext, timestamp: int) -> None:
    """Nightly by default (RECONCILIATION_CRON): compare our books with Stripe's and keep the differences."""
    await _reconcile(context)


async def reconcile_with_stripe_now(context: procrastinate.JobContext) -> None:
    """The same check on demand ("Run check now" in the admin)."""
    await _reconcile(context)


async def end_refused_trials(context: procrastinate.JobContext, timestamp: int) -> None:
    """Trials refused after Checkout (the card already had one) are ended at Stripe."""
    services = services_of_job(context)
    count = await trials.end_refused(services.db, services.stripe)
    if count:
        log.info("ended %s refused trials", count)


async def recover_stalled_jobs(context: procrastinate.JobContext, timestamp: int) -> None:
    """Jobs left `doing` by a worker that died (SIGKILL, OOM, lost machine) go back to the queue."""
    manager = context.app.job_manager
    for job in await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER_SECONDS):
        log.warning("retrying job %s (%s) left running by a dead worker", job.id, job.task_name)
        await manager.retry_job(job)


# (name, cron, body); a sixth cron field is seconds and comes LAST. Each periodic job also runs again on its next
# tick, so a short retry is enough.
PERIODIC: tuple[tuple[str, str, Any], ...] = (
    ("sweep_stripe_events", "* * * * * */10", sweep_stripe_events),
    ("catch_up_stripe_events", "*/5 * * * *", catch_up_stripe_events),
    ("expire_subscriptions", "* * * * *", expire_subscriptions),
    ("send_unsent_refunds", "* * * * *", send_unsent_refunds),
    ("purge_billing_sessions", "7,37 * * * *", purge_billing_sessions),
    ("purge_form_submissions", "17 3 * * *", purge_form_submissions),
    ("prune_admin_sessions", "23 * * * *", prune_admin_sessions),
    ("verify_audit_chain", "43 2 * * *", verify_audit_chain),
    ("recover_stalled_jobs", "* * * * * */15", recover_stalled_jobs),
    ("issue_documents", "* * * * *", issue_documents),
    # every 2 s: a change reaches client apps within seconds; a run that finds nothing due is one indexed query
    ("deliver_webhooks", "* * * * * */2", deliver_webhooks),
    ("deliver_emails", "* * * * * */5", deliver_emails),
    ("retry_updated_cards", "* * * * * */5", retry_updated_cards),
    ("queue_dunning_notices", "* * * * *", queue_dunning_notices),
    # every 5 s: a refused trial is ended while the user is still on the return page; one partial-index query
    ("end_refused_trials", "* * * * * */5", end_refused_trials),
)


# one delivery run at a time, so slow client endpoints never fill every worker slot; ticks that find it running
# wait without a slot (no queueing lock: a stalled run could then never be put back while a tick waits)
SERIAL_LOCKS: dict[str, str] = {
    "deliver_webhooks": "deliver_webhooks",
    "deliver_emails": "deliver_emails",
    "retry_updated_cards": "retry_updated_cards",
    # the nightly and the on-demand check share one lock: two workers never run it at once
    "reconcile_with_stripe": CHECK_LOCK,
}


def make_blueprint(*, reconciliation_cron: str = "23 3 * * *") -> procrastinate.Blueprint:
    """A fresh blueprint for each app: `App.add_tasks_from` renames and re-binds a blueprint's tasks, so one shared
    blueprint would break the second app of a process (web + in-process worker under `payment dev`, tests)."""
    blueprint = procrastinate.Blueprint()
    blueprint.task(name=APPLY_EVENT, pass_context=True, retry=EVENT_RETRY)(apply_stripe_event)
    blueprint.task(name="issue_documents_now", pass_context=True, retry=PERIODIC_RETRY, lock="issue_documents_now")(
        issue_documents_now
    )
    blueprint.task(
        name=CHECK_NOW_TASK.removeprefix("payment:"), pass_context=True, retry=PERIODIC_RETRY, lock=CHECK_LOCK
    )(reconcile_with_stripe_now)
    periodic = (*PERIODIC, ("reconcile_with_stripe", reconciliation_cron, reconcile_with_stripe))
    for name, cron, body in periodic:
        task = blueprint.task(name=name, pass_context=True, retry=PERIODIC_RETRY, lock=SERIAL_LOCKS.get(name))(body)
        blueprint.periodic(cron=cron)(task)
    return blueprint
