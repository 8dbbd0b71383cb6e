"""CSV as spreadsheet programs read it safely: UTF-8 with a BOM, formulas neutralised.

A cell that starts with = + - @ (or a tab / carriage return, which some programs skip before them) would run as a
formula in Excel, LibreOffice or Google Sheets (CSV injection): such text cells get a leading apostrophe. Numbers
we write ourselves (amounts, ids) are not text and stay as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal

BOM = "\ufeff".encode()
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_FIRST = frozenset(FORMULA_STARTS)

Cell = str | int | Decimal | date | datetime | bool | None


def escape_text(value: str) -> str:
    """Text that a spreadsheet would take for a formula, prefixed with an apostrophe."""
    return "'" + value if value[:1] in _FORMULA_FIRST else value


def cell_text(value: Cell) -> str:
    """One cell: text escaped, numbers and dates as written (a non-negative amount never looks like a formula)."""
    if value is None:
        return ""
    if type(value) is str:
        return "'" + value if value[:1] in _FORMULA_FIRST else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return escape_text(str(value))


def encode_rows(rows: Iterable[Sequence[Cell]]) -> bytes:
    """Rows as CSV bytes (RFC 4180 quoting, CRLF line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([cell_text(v) for v in row])
    return buffer.getvalue().encode("utf-8")


def minor_to_decimal(cents: int | None) -> Decimal | None:
    """Minor units as a decimal amount (both supported currencies have two decimals)."""
    return None if cents is None else Decimal(cents).scaleb(-2)


def minor_text(cents: int | None) -> str | None:
    """Minor units as the amount's text, "1234.50" (faster than a Decimal, for millions of export cells)."""
    if cents is None:
        return None
    whole, frac = divmod(abs(cents), 100)
    return f"{'-' if cents < 0 else ''}{whole}.{frac:02d}"
