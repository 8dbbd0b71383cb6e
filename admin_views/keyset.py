"""Read-only SQLAdmin list views with filters, the exact total and infinite scroll (keyset, never OFFSET).

The first page is rendered with the layout; the browser asks for the next rows with `?after=<last id>&fragment=1`
and appends them (static/admin.js, IntersectionObserver). Filters live in the query string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from admin_views.base import IntegerPkView
from payment.listing import Page, clamp_page_size, parse_after
from payment.runtime import services_of


@dataclass(frozen=True)
class FilterSpec:
    name: str
    label: str
    choices: Sequence[tuple[str, str]] | None = None
    """None: a free-text input."""


def plain_choices(values: Sequence[str]) -> list[tuple[str, str]]:
    return [(v, v.replace("_", " ")) for v in values]


class KeysetModelView(IntegerPkView):
    """A money or history table: listed newest first, filtered, read-only in SQLAdmin."""

    can_create = False
    can_edit = False
    can_delete = False
    can_export = False  # an export would read the whole table in one request
    can_import = False

    list_headers: ClassVar[Sequence[str]] = ()
    row_template: ClassVar[str] = ""
    filter_names: ClassVar[tuple[str, ...]] = ()
    empty_message: ClassVar[str] = "Nothing matches these filters."
    export_kind: ClassVar[str] = ""
    """The CSV export of this list (payment.exports), offered with the current filters; empty = none."""
    page_size = 50

    async def filter_specs(self, session: AsyncSession) -> list[FilterSpec]:
        return []

    async def fetch(
        self, session: AsyncSession, filters: dict[str, str], *, after: int | None, limit: int, with_total: bool
    ) -> Page[Any]:
        raise NotImplementedError

    async def row_context(self, session: AsyncSession, rows: list[Any]) -> dict[str, Any]:
        """Extra template values computed once for a page of rows (e.g. names to show beside ids)."""
        return {}

    def render_rows(self, request: Request, rows: list[Any]) -> Markup | None:
        """The rows' HTML built in Python, for the lists big enough that rendering `row_template` per row through
        the async Jinja environment is most of the page's time; None renders `row_template`."""
        return None

    def _filters(self, request: Request) -> dict[str, str]:
        return {
            n: request.query_params[n].strip()[:255]
            for n in self.filter_names
            if request.query_params.get(n, "").strip()
        }

    async def keyset_list(self, request: Request, *, can_list: bool = True) -> Response:
        filters = self._filters(request)
        after = parse_after(request.query_params.get("after"))
        limit = clamp_page_size(request.query_params.get("pageSize"), self.page_size)
        fragment = request.query_params.get("fragment") == "1"
        async with services_of(request).db.session() as session:
            page = await self.fetch(session, filters, after=after, limit=limit, with_total=not fragment)
            specs = [] if fragment else await self.filter_specs(session)
            extra = await self.row_context(session, page.rows)
        next_url = ""
        if page.next_after is not None:
            next_url = str(request.url.include_query_params(after=page.next_after, fragment=1))
        context = {
            "model_view": self,
            "rows": page.rows if can_list else [],
            "total": page.total,
            "next_url": next_url if can_list else "",
            "filters": filters,
            "filter_specs": specs,
            "title": self.name_plural or self.name,
            "headers": self.list_headers,
            "row_template": self.row_template,
            "rows_html": self.render_rows(request, page.rows) if can_list else None,
            "can_list": can_list,
            **extra,
        }
        if fragment:
            response: Response = await self.templates.TemplateResponse(request, "admin/keyset_rows.html", context)
            response.headers["X-Next-Page"] = next_url
            response.headers["Cache-Control"] = "no-store"
            return response
        return await self.templates.TemplateResponse(request, "admin/keyset_list.html", context)
