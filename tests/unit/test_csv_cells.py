"""A CSV cell a spreadsheet would run as a formula is written as text."""

from __future__ import annotations

from payment.exports.csv_format import cell_text


def test_cells_that_would_run_as_formulas_are_escaped() -> None:
    for raw in ('=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"):
        assert cell_text(raw) == "'" + raw
    assert cell_text("Ann = Bob") == "Ann = Bob"
    assert cell_text(-5) == "-5"  # a number we write is not text
