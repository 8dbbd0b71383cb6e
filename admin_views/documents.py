"""Admin: download a document's PDF, export CSVs (streamed), the monthly VAT summary, issue documents now.

Downloads and exports are GET (they change nothing the admin sees) and each writes an audit row before any byte
leaves. The export's permission is checked by the service (payment.exports.service.start_export).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any
from urllib.parse import quote

from sqladmin import Admin, BaseView, expose
from sqladmin.flash import Flash
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from admin_views.access import guard, refuse
from admin_views.auth import client_ip, current_admin_actor
from admin_views.transactions import admin_transaction
from admin_views.two_factor import step_up_redirect
from payment.admins.permissions import Permission, PermissionDenied
from payment.documents import runner
from payment.documents import service as documents
from payment.errors import PaymentError
from payment.exports import service as exports
from payment.models import SellerProfile
from payment.runtime import Services, services_of

log = logging.getLogger(__name__)
EXPORT_FILTERS = (
    "status",
    "plan",
    "source",
    "customer",
    "currency",
    "invoice",
    "q",
    "actor",
    "action",
    "entity_type",
    "entity_id",
    "seller",
    "year",
)


def pdf_response(number: str, pdf: bytes, sha256: str | None) -> Response:
    """The PDF as an attachment named by its number; never cached by a shared cache."""
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{quote(number)}.pdf"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
            "X-Document-SHA256": sha256 or "",
        },
    )


class DocumentsView(BaseView):
    """SQLAdmin names a BaseView's routes `view-<identity>` and gives the view the identity of the last exposed
    method in name order: `page` sorts last, so the menu links to the page."""

    name = "Documents & exports"
    identity = "documents"
    icon = "fa-solid fa-file-pdf"

    @expose("/documents", methods=["GET"], identity="documents")
    async def page(self, request: Request) -> Response:
        services = services_of(request)
        year = request.query_params.get("year", "")
        async with services.db.session() as session:
            summary = await exports.vat_summary_rows(
                session, year=int(year) if year.isdigit() and len(year) == 4 else None
            )
            sellers = (await session.execute(SellerProfile.__table__.select())).all()
        context: dict[str, Any] = {
            "title": "Documents & exports",
            "summary": summary,
            "header": exports.VAT_HEADER,
            "sellers": sellers,
            "year": year or str(date.today().year),
            "kinds": exports.KINDS,
        }
        return await self.templates.TemplateResponse(request, "admin/documents.html", context)

    @expose("/documents/{pk:int}/pdf", methods=["GET"], identity="document-pdf")
    async def download(self, request: Request) -> Response:
        services = services_of(request)
        try:
            async with admin_transaction(services.db, request.url.path) as session:
                doc = await documents.download(
                    session, int(request.path_params["pk"]), actor=current_admin_actor(request), ip=client_ip(request)
                )
        except PaymentError as exc:
            raise HTTPException(status_code=exc.status_code, detail=exc.message) from None
        assert doc.pdf is not None
        return pdf_response(doc.number, doc.pdf, doc.sha256)

    @expose("/exports/{kind:str}.csv", methods=["GET"], identity="export")
    async def export(self, request: Request) -> Response:
        services = services_of(request)
        kind = str(request.path_params["kind"]).replace("-", "_")
        filters = {
            n: request.query_params[n].strip()[:255] for n in EXPORT_FILTERS if request.query_params.get(n, "").strip()
        }
        await guard(request, Permission.EXPORT)
        # an export takes every row out of the service: a fresh code (or password) first, as for refunds and keys
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if (stale := step_up_redirect(request, here)) is not None:
            return stale
        try:
            async with admin_transaction(services.db, request.url.path) as session:
                filename = await exports.start_export(
                    session, kind, filters, actor=current_admin_actor(request), ip=client_ip(request)
                )
        except PermissionDenied as denied:
            await refuse(request, denied)
        except PaymentError as exc:
            raise HTTPException(status_code=exc.status_code, detail=exc.message) from None
        return StreamingResponse(
            exports.stream(services.db, kind, filters),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "private, no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )

    @expose("/documents/issue-now", methods=["POST"], identity="documents-issue-now")
    async def issue_now(self, request: Request) -> Response:
        await guard(request, Permission.MANAGE_DOCUMENTS)
        queued = await runner.request_run(services_of(request).jobs)
        if queued:
            Flash.success(request, "Documents that are due will be issued in a moment.")
        else:
            Flash.warning(request, "The job queue is unreachable; the periodic run issues them within a minute.")
        return RedirectResponse(str(request.url_for("admin:view-documents")), status_code=303)


def register(admin: Admin, services: Services) -> None:
    """Add the documents page and its download and export routes."""
    admin.add_base_view(DocumentsView)


class WithDocuments:
    """A detail page (invoice, refund) that lists its documents with download links."""

    document_key = "invoice_id"

    async def get_object_for_details(self, request: Request) -> Any:
        found = await super().get_object_for_details(request)  # type: ignore[misc]
        if found is not None:
            async with services_of(request).db.session() as session:
                request.state.documents = await documents.documents_for(session, **{self.document_key: found.id})
        return found
