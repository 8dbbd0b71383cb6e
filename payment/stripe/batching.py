"""Micro-batching of webhook deliveries: concurrent deliveries share one statement, one transaction, one commit.

A delivery waits only while earlier batches are in flight: when fewer than `max_in_flight` batches are running, the
deliveries that arrived in the same turn of the event loop go at once (a lone delivery is never held back); while
batches run, arrivals queue and leave together as the next batch (at most `max_batch`). So batches grow exactly when
the database is the wait, and each commit (a WAL flush) carries many events instead of one.

Each caller is answered after its batch has committed (never a 2xx before the event is durable). Duplicates inside
a batch are stored once: the first delivery of an id gets what the statement found, its twins are duplicates. When
a batch fails for any reason but an outage (e.g. one body PostgreSQL's jsonb refuses), its deliveries are stored
one by one, so one bad delivery fails alone; an outage fails the whole batch (every caller answers 503 and Stripe
delivers again).
"""

from __future__ import annotations

import asyncio
import logging

from payment.db import Database
from payment.outage import is_outage
from payment.stripe.inbox import Delivery, Stored, store_and_defer_many

log = logging.getLogger(__name__)

_Waiting = tuple[Delivery, "asyncio.Future[Stored]"]


class Backlogged(Exception):
    """So many deliveries already wait for the database that this one is refused at once (Stripe retries)."""


class DeliveryBatcher:
    """Stores verified deliveries in batches on one process's database pool (see the module's docstring)."""

    def __init__(
        self, db: Database, *, task: str, max_batch: int = 128, max_in_flight: int = 2, max_waiting: int = 2048
    ) -> None:
        self.db = db
        self.task = task
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        # a database that stopped answering must not collect an unbounded queue of requests in memory: past this,
        # deliveries are refused (503) instead of waiting behind batches that will each wait for the pool
        self.max_waiting = max_waiting
        self._waiting: list[_Waiting] = []
        self._in_flight = 0
        self._scheduled = False
        self._flushes: set[asyncio.Task[None]] = set()

    async def store(self, delivery: Delivery) -> Stored:
        """The stored event of this delivery, once the batch carrying it has committed."""
        if len(self._waiting) >= self.max_waiting:
            raise Backlogged(f"{len(self._waiting)} deliveries already wait for the database")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Stored] = loop.create_future()
        self._waiting.append((delivery, future))
        self._kick(loop)
        return await future

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        # one loop turn later, so deliveries read in the same turn go in the same batch
        if self._waiting and not self._scheduled and self._in_flight < self.max_in_flight:
            self._scheduled = True
            loop.call_soon(self._start, loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        while self._waiting and self._in_flight < self.max_in_flight:
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            self._in_flight += 1
            flush = loop.create_task(self._flush(batch, loop))
            self._flushes.add(flush)  # the loop keeps only weak references to tasks
            flush.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[_Waiting], loop: asyncio.AbstractEventLoop) -> None:
        try:
            await self._store_batch(batch)
        except Exception as exc:  # never leave a caller waiting, whatever went wrong (each answers 503)
            log.warning("a batch of stripe events was not stored: %s", type(exc).__name__)
            for _delivery, future in batch:
                _fail(future, exc)
        except asyncio.CancelledError:  # the loop is closing
            for _delivery, future in batch:
                _fail(future, RuntimeError("shutting down"))
            raise
        finally:
            self._in_flight -= 1
            self._kick(loop)

    async def _store_batch(self, batch: list[_Waiting]) -> None:
        firsts: dict[str, Delivery] = {}
        for delivery, _future in batch:
            firsts.setdefault(delivery.event_id, delivery)
        distinct = list(firsts.values())
        try:
            found = await self._store(distinct)
        except Exception as exc:
            if len(distinct) == 1 or is_outage(exc):
                for _delivery, future in batch:
                    _fail(future, exc)
                return
            log.warning(
                "a batch of %d stripe events failed (%s); storing them one by one", len(distinct), type(exc).__name__
            )
            found = {}
            failed: dict[str, Exception] = {}
            for delivery in distinct:
                try:
                    found.update(await self._store([delivery]))
                except Exception as one:
                    failed[delivery.event_id] = one
            for delivery, future in batch:
                if delivery.event_id in failed:
                    _fail(future, failed[delivery.event_id])
        for delivery, future in batch:
            stored = found.get(delivery.event_id)
            if stored is None:
                continue
            if delivery is not firsts[delivery.event_id]:
                stored = Stored(stored.id, False, stored.status)  # its twin in this batch stored it
            if not future.done():  # the request may have been cancelled (client gone) meanwhile
                future.set_result(stored)

    async def _store(self, deliveries: list[Delivery]) -> dict[str, Stored]:
        return await self.db.on_driver(lambda conn: store_and_defer_many(conn, deliveries, task=self.task))


def _fail(future: asyncio.Future[Stored], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
