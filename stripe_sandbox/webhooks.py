"""Signed webhook delivery: per-endpoint queues in creation order, retries with exponential back-off."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections import deque
from typing import Any

import httpx

from . import versions
from .api import Config
from .store import JSON, Store

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
DELIVERY_TIMEOUT_SECONDS = 10.0


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header value for a payload."""
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


def _matches(enabled: list[str], event_type: str) -> bool:
    return any(e == "*" or e == event_type or (e.endswith(".*") and event_type.startswith(e[:-1])) for e in enabled)


class Dispatcher:
    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self.queues: dict[str, deque[tuple[str, str, str, bytes]]] = {}
        self.workers: dict[str, asyncio.Task[None]] = {}
        self.posting: set[asyncio.Task[Any]] = set()  # workers with an attempt on the wire
        self.epoch = 0  # bumped by clear(): an attempt on the wire before it is not retried
        self.deliveries: list[JSON] = []
        self.client: httpx.AsyncClient | None = None
        store.on_event = self.enqueue

    def targets(self, event_type: str) -> list[tuple[str, str, str, str | None]]:
        """(queue key, url, secret, api_version) of every endpoint that receives this event type."""
        found: list[tuple[str, str, str, str | None]] = [
            (f"static{i}", url, secret, None) for i, (url, secret) in enumerate(self.config.webhook_endpoints)
        ]
        for endpoint in self.store.all("webhook_endpoint")[::-1]:
            version = endpoint.get("api_version")
            if (
                endpoint["status"] == "enabled"
                and _matches(endpoint["enabled_events"], event_type)
                and versions.delivers(version, event_type)
            ):
                found.append((endpoint["id"], endpoint["url"], endpoint["_secret"], version))
        return found

    def enqueue(self, event: JSON) -> int:
        targets = self.targets(event["type"])
        event["pending_webhooks"] = len(targets)
        for key, url, secret, version in targets:
            payload = json.dumps(versions.render(self.store, event, version), indent=2).encode()
            self.queues.setdefault(key, deque()).append((event["id"], url, secret, payload))
            self._ensure_worker(key)
        return len(targets)

    def _ensure_worker(self, key: str) -> None:
        if key in self.workers:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # started later by start()
        self.workers[key] = loop.create_task(self._worker(key))

    async def start(self) -> None:
        if self.client is None:
            self.client = httpx.AsyncClient(timeout=DELIVERY_TIMEOUT_SECONDS)
        for key, queue in self.queues.items():
            if queue:
                self._ensure_worker(key)

    async def stop(self) -> None:
        for task in list(self.workers.values()):
            task.cancel()
        for task in list(self.workers.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.workers.clear()
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def clear(self) -> None:
        """Drop every queued delivery and retry.

        An attempt already on the wire is let finish, since its endpoint may be reading it; a worker waiting for its
        back-off is cancelled. So once this returns, no delivery queued before the call can still reach an endpoint.
        """
        self.epoch += 1
        tasks = list(self.workers.values())
        self.workers.clear()
        for queue in self.queues.values():
            queue.clear()  # a worker's loop ends with its queue emptied
        self.queues.clear()
        self.deliveries.clear()
        for task in tasks:
            if task not in self.posting:
                task.cancel()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=DELIVERY_TIMEOUT_SECONDS + 1)
            for task in late:
                task.cancel()

    def pending(self) -> int:
        return sum(len(q) for q in self.queues.values())

    async def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def _worker(self, key: str) -> None:
        try:
            queue = self.queues.get(key)
            while queue:
                event_id, url, secret, payload = queue[0]
                await self._deliver(event_id, url, secret, payload)
                if queue and queue[0][0] == event_id:
                    queue.popleft()
                event = self.store.get("event", event_id)
                if event is not None:
                    event["pending_webhooks"] = max(0, int(event["pending_webhooks"]) - 1)
        finally:
            if self.workers.get(key) is asyncio.current_task():
                del self.workers[key]

    async def _deliver(self, event_id: str, url: str, secret: str, payload: bytes) -> bool:
        if self.client is None:
            self.client = httpx.AsyncClient(timeout=DELIVERY_TIMEOUT_SECONDS)
        epoch = self.epoch
        for attempt in range(1, self.config.max_attempts + 1):
            record: JSON = {
                "event": event_id,
                "url": url,
                "attempt": attempt,
                "status": None,
                "error": None,
                "at": time.time(),
            }
            self.deliveries.append(record)
            del self.deliveries[:-1000]
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": USER_AGENT,
                "Stripe-Signature": sign(payload, secret),
            }
            task = asyncio.current_task()
            assert task is not None  # _deliver runs in its endpoint's worker task
            self.posting.add(task)
            try:
                response = await self.client.post(url, content=payload, headers=headers)
                record["status"] = response.status_code
                if 200 <= response.status_code < 300:
                    return True
            except httpx.HTTPError as exc:
                record["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                self.posting.discard(task)
            if self.epoch != epoch:
                return False  # cleared while this attempt was on the wire: no retry, no back-off to wait for
            if attempt < self.config.max_attempts:
                await asyncio.sleep(self.config.retry_base_seconds * 2 ** (attempt - 1))
        return False
