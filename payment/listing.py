"""Keyset pagination with an exact total: the admin lists' way through millions of rows.

Pages are keyed by the last id seen (newest first), never by OFFSET, so the thousandth page costs what the first
does; the total is one `count(*)` over the same filter, which the (filter, id DESC) indexes keep cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: list[T]
    next_after: int | None
    """The id to pass as `after` for the next page; None on the last page."""
    total: int | None
    """The exact number of rows matching the filter (None when not asked for)."""


def parse_after(raw: str | None) -> int | None:
    """A cursor from a query string; anything that is not a positive integer means "from the start"."""
    if raw is None or not raw.strip().isdigit():
        return None
    value = int(raw)
    return value if 0 < value < 2**63 else None


def clamp_page_size(raw: str | int | None, default: int = DEFAULT_PAGE_SIZE) -> int:
    try:
        size = int(raw) if raw is not None else default
    except ValueError:
        size = default
    return max(1, min(size, MAX_PAGE_SIZE))


async def exact_count(session: AsyncSession, model: type[Any], where: Sequence[ColumnElement[bool]]) -> int:
    """count(*) of `model` rows matching every condition in `where`."""
    return int((await session.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def keyset_page(
    session: AsyncSession,
    stmt: Select[*tuple[Any, ...]],
    *,
    key: InstrumentedAttribute[int],
    after: int | None,
    limit: int = DEFAULT_PAGE_SIZE,
    count_model: type[Any] | None = None,
    where: Sequence[ColumnElement[bool]] = (),
    columns: bool = False,
) -> Page[Any]:
    """Rows of `stmt` (already filtered by `where`) newest first, those with key < `after`; plus the total if
    `count_model` is given (counted with the same `where`). With `columns`, each row is the statement's row of
    columns (a Core select, no ORM objects built) instead of its first entity."""
    page_stmt = stmt.where(*where)
    if after is not None:
        page_stmt = page_stmt.where(key < after)
    page_stmt = page_stmt.order_by(key.desc()).limit(limit + 1)
    result = await session.execute(page_stmt)
    rows = list(result.all() if columns else result.scalars().unique().all())
    more = len(rows) > limit
    rows = rows[:limit]
    next_after = int(getattr(rows[-1], key.key)) if more and rows else None
    total = await exact_count(session, count_model, where) if count_model is not None else None
    return Page(rows=rows, next_after=next_after, total=total)
