"""A document's PDF from its stored snapshot, with WeasyPrint and the system's Thai font (fonts-tlwg-loma-otf).

No network at render time: the only resources a document may load are `data:` URLs (the logo).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from payment.documents import thai_text
from payment.documents.rules import amount_text, branch_label, thai_date
from payment.models import Document

_RENDER_LOCK = threading.Lock()
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"])
)
TITLES = {
    ("tax_invoice", True): ("ใบกำกับภาษี/ใบเสร็จรับเงิน", "Tax invoice/Receipt"),
    ("tax_invoice", False): ("ใบเสร็จรับเงิน", "Receipt"),
    ("credit_note", True): ("ใบลดหนี้", "Credit note"),
    ("credit_note", False): ("ใบลดหนี้", "Credit note"),
}


@dataclass(frozen=True)
class Rendered:
    pdf: bytes
    sha256: str


def document_html(
    document: Document, *, original: Document | None, replaces: Document | None, paid_at: datetime | None
) -> str:
    """The HTML of a document: everything comes from its snapshot and the documents it references."""
    seller = document.seller_snapshot
    vat_registered = bool(seller.get("vat_registered"))
    title_th, title_en = TITLES[(document.kind, vat_registered)]
    rate = f"{document.vat_rate_bp / 100:g}"
    credit = document.kind == "credit_note"
    return TEMPLATES.get_template("document.html").render(
        doc=document,
        seller=seller,
        original=original,
        replaces=replaces,
        title_th=title_th,
        title_en=title_en,
        seller_branch=branch_label(str(seller.get("branch_code") or "")),
        buyer_branch=branch_label(document.buyer_branch_code or "00000"),
        vat_registered=vat_registered,
        rate=rate,
        issue_date=document.issue_date.isoformat(),
        paid_date=thai_date(paid_at).isoformat() if paid_at else None,
        currency=document.currency.upper(),
        amount=amount_text,
        net_label=("มูลค่าที่ลดลงก่อนภาษี / Reduction before VAT" if credit else "มูลค่าก่อนภาษีมูลค่าเพิ่ม / Amount before VAT"),
        total_label="รวมเงินที่ลดลง / Total credited" if credit else "จำนวนเงินรวมทั้งสิ้น / Total",
    )


def render_pdf(html: str) -> Rendered:
    """The PDF bytes and their SHA-256 (CPU-bound, about a second: callers run it outside any transaction)."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    # one rendering at a time per process: Pango and fontconfig keep process-wide state
    with _RENDER_LOCK:
        thai_text.install()
        fetcher = URLFetcher(allowed_protocols={"data"})
        pdf = HTML(string=html, url_fetcher=fetcher).write_pdf()
    assert isinstance(pdf, bytes)
    return Rendered(pdf=pdf, sha256=hashlib.sha256(pdf).hexdigest())
