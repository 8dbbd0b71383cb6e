"""Admin billing operations under contention: refunds racing on one invoice, double submissions of one form, and
manual payments in a row, each through the same transaction + nonce flow the admin pages use.

    python benchmarks/operations.py [--racers 50] [--payments 200]

Uses its own database: an embedded PostgreSQL in a temporary folder, or a new database on TEST_DATABASE_URL's
server. Prints outcomes (which must hold: never more refunded than paid, one action per nonce) and timings.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pgserver import server
from payment import migrate
from payment.admins.permissions import AdminActor, Role
from payment.bootstrap import build_services
from payment.config import Settings
from payment.dburl import libpq_url, with_database
from payment.errors import PaymentError
from payment.models import Invoice, Refund
from payment.payments.service import ManualPayment, record_manual
from payment.refunds import service as refunds
from payment.runtime import Services
from payment.submissions import service as submissions
from tests.support import factories

DATABASE = "aquoris_operations_bench"
ACTOR = AdminActor(1, Role.OWNER)


async def main(racers: int, payments: int) -> None:
    with server() as root:
        conn = await asyncpg.connect(libpq_url(root))
        await conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{DATABASE}"')
        await conn.close()
        url = with_database(root, DATABASE)
        await migrate.upgrade_async(url)
        services = build_services(Settings(app_env="test", database_url=url, db_pool_size=20))
        try:
            await run(services, racers, payments)
        finally:
            await services.db.dispose()


async def run(services: Services, racers: int, payments: int) -> None:
    db = services.db
    half = racers // 2
    async with db.transaction() as session:
        customer = await factories.create_customer(session)
        invoice = await factories.create_invoice(session, customer, source="manual", amount_cents=half * 100)
        plan = await factories.create_plan(session)
    invoice_id = invoice.id

    async def refund_once(nonce: str) -> str:
        try:
            async with db.transaction() as session:
                if await submissions.claim(session, nonce, action="refund", actor=ACTOR) is not None:
                    return "replayed"
                await refunds.issue(session, invoice_id, amount_cents=100, reason="bench", actor=ACTOR)
                await submissions.settle(session, nonce, {"level": "success", "message": "ok"})
                return "refunded"
        except PaymentError:
            return "refused"

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(refund_once(submissions.new_nonce()) for _ in range(racers)))
    elapsed = time.perf_counter() - started
    async with db.session() as session:
        refunded = await session.get(Invoice, invoice_id)
        assert refunded is not None
        rows = len(list(await session.scalars(Refund.__table__.select().where(Refund.invoice_id == invoice_id))))
    print(
        f"refund race: {racers} admins refund 1.00 each on a {half}.00 invoice at once -> "
        f"{outcomes.count('refunded')} refunded, {outcomes.count('refused')} refused; refunded total "
        f"{refunded.amount_refunded_cents / 100:.2f}, {rows} refund rows; {elapsed * 1000:.0f} ms wall, "
        f"{elapsed * 1000 / racers:.1f} ms per attempt"
    )

    async with db.transaction() as session:
        invoice2 = await factories.create_invoice(session, customer, source="manual", amount_cents=10_000)
    nonce = submissions.new_nonce()
    invoice_id = invoice2.id
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(refund_once(nonce) for _ in range(racers)))
    elapsed = time.perf_counter() - started
    print(
        f"double submission: the same form posted {racers} times at once -> {outcomes.count('refunded')} acted, "
        f"{outcomes.count('replayed')} replayed the first outcome; {elapsed * 1000:.0f} ms wall"
    )

    times: list[float] = []
    async with db.transaction() as session:
        payers = [await factories.create_customer(session) for _ in range(payments)]
    for i, payer in enumerate(payers):
        started = time.perf_counter()
        async with db.transaction() as session:
            await record_manual(
                session,
                payer.id,
                ManualPayment(
                    amount_cents=29900,
                    currency="thb",
                    payment_method="bank_transfer",
                    reference_number=f"BENCH-{i}",
                    plan_id=plan.id,
                    months=1,
                ),
                actor=ACTOR,
            )
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    print(
        f"record manual payment: {payments} in a row -> median {statistics.median(times):.1f} ms, "
        f"p95 {times[int(len(times) * 0.95) - 1]:.1f} ms, max {times[-1]:.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--racers", type=int, default=50)
    parser.add_argument("--payments", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.racers, args.payments))
