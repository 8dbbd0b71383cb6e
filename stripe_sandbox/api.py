"""The small framework the resource modules use: a request context and a route table."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import not_found
from .store import JSON, Store


@dataclass
class Config:
    base_url: str
    retry_days: tuple[int, ...] = (3, 5, 7)
    retry_base_seconds: float = 1.0
    max_attempts: int = 6
    webhook_endpoints: list[tuple[str, str]] = field(default_factory=list)
    # added to every API answer (not to the hosted pages or /_sandbox), so benchmarks can show Stripe's latency;
    # tests change it at run time through /_sandbox/latency, and a reset puts back the one the sandbox started with
    latency_seconds: float = 0.0
    startup_latency_seconds: float = 0.0
    # API requests parked by /_sandbox/holds until a test releases them (see `Hold`)
    holds: list[Hold] = field(default_factory=list)
    # API requests answered so far, by "METHOD /route/{template}" (GET /_sandbox/requests): how many Stripe calls
    # a benchmark's work made
    requests: Counter[str] = field(default_factory=Counter)


@dataclass
class Hold:
    """The next API request matching `method` and `path_prefix` waits, before it is executed, until released: a
    test sees what the caller holds while its Stripe call is in flight. Lives on the sandbox's event loop."""

    id: str
    method: str
    path_prefix: str
    parked: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    parked_path: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "path_prefix": self.path_prefix,
            "parked": self.parked.is_set(),
            "parked_path": self.parked_path,
            "released": self.released.is_set(),
        }

    async def park(self, path: str) -> None:
        self.parked_path = path
        self.parked.set()
        await self.released.wait()


@dataclass
class Ctx:
    store: Store
    config: Config
    params: dict[str, Any]
    path: dict[str, str]
    method: str
    url: str

    def load(self, kind: str, key: str = "id", label: str | None = None) -> JSON:
        object_id = self.path[key]
        obj = self.store.get(kind, object_id)
        if obj is None:
            raise not_found(label or kind, object_id)
        return obj


Handler = Callable[[Ctx], JSON]
ROUTES: list[tuple[str, str, Handler]] = []


def route(method: str, path: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        ROUTES.append((method, path, fn))
        return fn

    return register
