"""The issuing job's work: number what is due (one short transaction each), then render what has no PDF yet
(outside any transaction, the PDF stored in a transaction of its own)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

import procrastinate
from sqlalchemy import select

from payment.db import Database
from payment.documents import issuance, rendering, service
from payment.models import Document, Invoice, utcnow

log = logging.getLogger(__name__)
RENDER_BATCH = 50
DOCUMENTS_TASK = "payment:issue_documents_now"
DEFER_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class RunResult:
    issued: int
    rendered: int


async def issue_due(db: Database, *, now: datetime | None = None) -> int:
    """Issue every due document; each in its own transaction so one counter lock is held for milliseconds."""
    async with db.session() as session:
        due = await issuance.due_issues(session)
    issued = 0
    for kind, object_id in due:
        try:
            async with db.transaction() as session:
                if await issuance.ISSUERS[kind](session, object_id, now=now or utcnow()) is not None:
                    issued += 1
        except Exception as exc:  # one bad row must not hold up the others; it is tried again next run
            log.error("could not issue %s for %s (%s)", kind, object_id, type(exc).__name__)
    return issued


async def render_one(db: Database, document_id: int) -> bool:
    async with db.session() as session:
        document = await session.get(Document, document_id)
        if document is None or document.pdf is not None:
            return False
        original = await session.get(Document, document.original_document_id) if document.original_document_id else None
        replaces = await session.get(Document, document.replaces_id) if document.replaces_id else None
        paid_at = None
        if document.kind == "tax_invoice":
            paid_at = (
                await session.execute(select(Invoice.paid_at).where(Invoice.id == document.invoice_id))
            ).scalar_one_or_none()
        html = rendering.document_html(document, original=original, replaces=replaces, paid_at=paid_at)
    rendered = await asyncio.to_thread(rendering.render_pdf, html)
    async with db.transaction() as session:
        return await service.store_pdf(session, document_id, rendered)


async def render_due(db: Database, *, limit: int = RENDER_BATCH) -> int:
    async with db.session() as session:
        ids = (
            (
                await session.execute(
                    select(Document.id).where(Document.pdf.is_(None)).order_by(Document.id).limit(limit)
                )
            )
            .scalars()
            .all()
        )
    rendered = 0
    for document_id in ids:
        try:
            if await render_one(db, document_id):
                rendered += 1
        except Exception as exc:  # logged by type only (no document content in logs); retried next run
            log.error("could not render document %s (%s)", document_id, type(exc).__name__)
    return rendered


async def run(db: Database, *, now: datetime | None = None) -> RunResult:
    """Issue what is due, then render; safe to run from several workers at once (keys and locks)."""
    issued = await issue_due(db, now=now)
    rendered = await render_due(db)
    if issued or rendered:
        log.info("documents: %s issued, %s rendered", issued, rendered)
    return RunResult(issued, rendered)


async def request_run(jobs: procrastinate.App) -> bool:
    """Ask a worker to issue and render now (after a commit); False when the queue is unreachable, and the
    periodic run (every minute) does it anyway. Requests run one at a time (the task's lock); a request that finds
    nothing due is one query. No queueing lock: Procrastinate could then not put a stalled run back in the queue
    while another request waits."""
    try:
        await asyncio.wait_for(jobs.configure_task(DOCUMENTS_TASK).defer_async(), DEFER_TIMEOUT_SECONDS)
    except Exception as exc:
        log.warning("could not enqueue document issuing (%s); the periodic run will", type(exc).__name__)
        return False
    return True
