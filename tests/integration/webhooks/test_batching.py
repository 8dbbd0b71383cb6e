"""Concurrent webhook deliveries are stored together (one statement, one commit), each answered for itself: twins
stored once, a body PostgreSQL refuses failing alone, a bad signature refused without touching the others."""

from __future__ import annotations

import asyncio
import json

import httpx
from sqlalchemy import text

from payment.config import DEV_STRIPE_WEBHOOK_SECRET
from payment.jobs.stripe_events import APPLY_TASK
from payment.runtime import Services
from payment.stripe.batching import DeliveryBatcher
from payment.stripe.inbox import Delivery, delivery
from tests.support.stripe import event_body, sign

URL = "/api/v1/webhooks/stripe"


def _delivery(event_id: str, *, bad: bool = False) -> Delivery:
    # "\u0000" is valid JSON for Python but PostgreSQL's jsonb refuses it: a statement carrying it fails
    obj = {"id": f"in_{event_id}", "object": "invoice", "description": "\u0000" if bad else "ok"}
    body = event_body("invoice.paid", obj, event_id=event_id)
    return delivery(json.loads(body), body)


async def _stored(services: Services, event_ids: list[str]) -> dict[str, tuple[int, str]]:
    """Stripe id -> (row count, the transaction that wrote it)."""
    async with services.db.session() as session:
        rows = await session.execute(
            text(
                "SELECT stripe_event_id, count(*) OVER (PARTITION BY stripe_event_id) AS n, xmin::text AS tx "
                "FROM stripe_events WHERE stripe_event_id = ANY(:ids)"
            ),
            {"ids": event_ids},
        )
        return {row.stripe_event_id: (row.n, row.tx) for row in rows}


async def _jobs(services: Services, event_ids: list[str]) -> dict[str, int]:
    async with services.db.session() as session:
        rows = await session.execute(
            text(
                "SELECT e.stripe_event_id, count(j.id) AS jobs FROM stripe_events e "
                "LEFT JOIN procrastinate_jobs j ON j.task_name = :task "
                "AND (j.args->>'event_row_id')::bigint = e.id WHERE e.stripe_event_id = ANY(:ids) "
                "GROUP BY e.stripe_event_id"
            ),
            {"ids": event_ids, "task": APPLY_TASK},
        )
        return {row.stripe_event_id: row.jobs for row in rows}


async def test_concurrent_deliveries_are_stored_in_one_commit_and_twins_once(services: Services) -> None:
    batcher = DeliveryBatcher(services.db, task=APPLY_TASK)
    ids = [f"evt_batch_one_{i}" for i in range(20)]
    twins = ids[:3]
    results = await asyncio.gather(*(batcher.store(_delivery(i)) for i in [*ids, *twins]))
    by_id: dict[str, list[bool]] = {}
    for event_id, result in zip([*ids, *twins], results, strict=True):
        by_id.setdefault(event_id, []).append(result.created)
    assert all(sorted(created) == [False, True] for event_id, created in by_id.items() if event_id in twins)
    assert all(created == [True] for event_id, created in by_id.items() if event_id not in twins)
    # twins share their row
    assert results[0].id == results[20].id and results[0].status == results[20].status == "pending"
    stored = await _stored(services, ids)
    assert {event_id: n for event_id, (n, _tx) in stored.items()} == dict.fromkeys(ids, 1)
    assert len({tx for _n, tx in stored.values()}) == 1, "one transaction for the whole batch"
    assert await _jobs(services, ids) == dict.fromkeys(ids, 1)


async def test_a_delivery_postgres_refuses_fails_alone_and_the_batch_is_stored(services: Services) -> None:
    batcher = DeliveryBatcher(services.db, task=APPLY_TASK)
    good = [f"evt_batch_two_{i}" for i in range(6)]
    outcomes = await asyncio.gather(
        *(batcher.store(_delivery(i)) for i in good[:3]),
        batcher.store(_delivery("evt_batch_two_bad", bad=True)),
        *(batcher.store(_delivery(i)) for i in good[3:]),
        batcher.store(_delivery(good[0])),  # a twin of a good one, in the batch that fails
        return_exceptions=True,
    )
    assert isinstance(outcomes[3], Exception)
    answered = [o for i, o in enumerate(outcomes) if i != 3]
    assert not any(isinstance(o, BaseException) for o in answered), answered
    assert [getattr(o, "created", None) for o in answered] == [True] * 6 + [False]
    assert {event_id: n for event_id, (n, _tx) in (await _stored(services, good)).items()} == dict.fromkeys(good, 1)
    assert await _stored(services, ["evt_batch_two_bad"]) == {}
    assert await _jobs(services, good) == dict.fromkeys(good, 1)


async def test_a_redelivery_of_a_stored_event_in_a_later_batch_is_a_duplicate(services: Services) -> None:
    batcher = DeliveryBatcher(services.db, task=APPLY_TASK)
    [first] = await asyncio.gather(batcher.store(_delivery("evt_batch_three")))
    again, other = await asyncio.gather(
        batcher.store(_delivery("evt_batch_three")), batcher.store(_delivery("evt_batch_three_other"))
    )
    assert first.created and not again.created and other.created
    assert again.id == first.id


async def test_concurrent_http_deliveries_each_get_their_own_answer(
    client: httpx.AsyncClient, services: Services
) -> None:
    for round_no in range(3):
        ids = [f"evt_batch_http_{round_no}_{i}" for i in range(24)]
        bodies = {i: event_body("customer.subscription.updated", {"id": f"sub_{i}"}, event_id=i) for i in ids}
        requests = [(i, bodies[i], sign(bodies[i], DEV_STRIPE_WEBHOOK_SECRET)) for i in ids]
        requests += [(i, bodies[i], sign(bodies[i], DEV_STRIPE_WEBHOOK_SECRET)) for i in ids[:4]]  # twins
        requests.append(("bad-signature", bodies[ids[5]], sign(bodies[ids[5]], "whsec_not_ours")))
        bad = event_body("invoice.paid", {"id": "in_nul", "description": "\u0000"}, event_id=f"evt_nul_{round_no}")
        requests.append(("refused-by-postgres", bad, sign(bad, DEV_STRIPE_WEBHOOK_SECRET)))
        responses = await asyncio.gather(
            *(
                client.post(URL, content=body, headers={"Content-Type": "application/json", "Stripe-Signature": sig})
                for _i, body, sig in requests
            )
        )
        answers: dict[str, list[object]] = {}
        for (name, _body, _sig), response in zip(requests, responses, strict=True):
            answers.setdefault(name, []).append(
                response.json().get("duplicate") if response.status_code == 200 else response.status_code
            )
            assert response.headers["x-content-type-options"] == "nosniff"
        assert answers.pop("bad-signature") == [400]
        assert answers.pop("refused-by-postgres") == [503]
        assert {i: sorted(a, key=str) for i, a in answers.items()} == {
            i: [False, True] if i in ids[:4] else [False] for i in ids
        }
        assert {i: n for i, (n, _tx) in (await _stored(services, ids)).items()} == dict.fromkeys(ids, 1)
        jobs = await _jobs(services, ids)
        assert set(jobs) == set(ids) and all(n >= 1 for n in jobs.values())


async def test_a_delivery_beyond_the_backlog_is_refused_at_once(services: Services) -> None:
    batcher = DeliveryBatcher(services.db, task=APPLY_TASK, max_batch=2, max_in_flight=1, max_waiting=3)
    outcomes = await asyncio.gather(
        *(batcher.store(_delivery(f"evt_batch_backlog_{i}")) for i in range(4)), return_exceptions=True
    )
    assert [type(o).__name__ for o in outcomes] == ["Stored", "Stored", "Stored", "Backlogged"]
    assert len(await _stored(services, [f"evt_batch_backlog_{i}" for i in range(4)])) == 3
