"""What counts as "the database is unreachable or too busy": errors waiting cures, told apart from bugs.

The worker waits them out; the web surfaces answer 503 with Retry-After instead of a 500 and a traceback.
"""

from __future__ import annotations

import psycopg
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    OperationalError,
    InterfaceError,
    PoolTimeout,
)


def _chain(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    stack = [exc]
    while stack:
        current = stack.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return found


def is_outage(exc: BaseException) -> bool:
    """Whether the error means the database is unreachable, went away or kept us waiting too long, anywhere in its
    chain or group; anything else (a missing table, a bug) is not cured by waiting."""
    for current in _chain(exc):
        if isinstance(current, OUTAGE_ERRORS):
            return True
        if isinstance(current, BaseExceptionGroup):
            return all(is_outage(inner) for inner in current.exceptions)
    return False


def is_pool_wait(exc: BaseException) -> bool:
    """The database is up but every pooled connection stayed busy beyond the pool's short wait."""
    return any(isinstance(current, PoolTimeout) for current in _chain(exc))
