"""Server-side SVG charts for the dashboard: no script, no CDN, readable in the admin's light theme.

One chart per metric and currency (amounts of different currencies never share an axis). Each SVG is an accessible
image: role="img" with a <title> and a <desc> that lists every value, axis labels and a legend.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from xml.sax.saxutils import escape

from babel.numbers import format_compact_currency, format_currency, get_currency_precision

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 78, 16, 34, 40
AXIS = "#616876"
GRID = "#e6e7e9"
COLORS = {"thb": "#206bc4", "usd": "#2fb344"}
FALLBACK_COLOR = "#ae3ec9"


def to_major(cents: int, currency: str) -> Decimal:
    """Minor units as a Decimal amount in the currency's major unit (2 decimals for THB and USD)."""
    return Decimal(cents).scaleb(-get_currency_precision(currency.upper()))


def format_money(cents: int, currency: str, locale: str = "en_US") -> str:
    """An amount for people, as the rest of the admin shows money: "THB 1,146.18" (Babel, exact, never a float)."""
    return str(
        format_currency(
            to_major(cents, currency), currency.upper(), locale=locale, format="¤¤ #,##0.00", currency_digits=False
        )
    )


def _compact(cents: int, currency: str) -> str:
    major = to_major(cents, currency)
    if abs(major) < 1000:
        return str(
            format_currency(
                major,
                currency.upper(),
                locale="en_US",
                format_type="standard",
                currency_digits=False,
                decimal_quantization=False,
            )
        ).replace(".00", "")
    return str(format_compact_currency(major, currency.upper(), locale="en_US", fraction_digits=1))


def nice_ticks(low: int, high: int, count: int = 4) -> list[int]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering [low, high], zero included."""
    low, high = min(low, 0), max(high, 0)
    if low == high:
        high = low + 100
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks: list[int] = []
    value = start
    while value < high + step:
        ticks.append(round(value))
        if value >= high:
            break
        value += step
    return ticks


@dataclass(frozen=True)
class Chart:
    """One SVG chart: a series of monthly minor-unit values in one currency."""

    title: str
    metric: str
    currency: str
    months: list[datetime]
    values: list[int]
    kind: str = "line"  # "line" for a level (MRR), "bar" for a flow (revenue)

    def svg(self, chart_id: str) -> str:
        ticks = nice_ticks(min(self.values, default=0), max(self.values, default=0))
        lo, hi = ticks[0], ticks[-1]
        plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
        slot = plot_w / max(len(self.values), 1)
        color = COLORS.get(self.currency, FALLBACK_COLOR)

        def y(value: int) -> float:
            return TOP + plot_h - (value - lo) / (hi - lo) * plot_h

        def x(index: int) -> float:
            return LEFT + slot * (index + 0.5)

        label = f"{self.metric} in {self.currency.upper()}"
        desc = "; ".join(
            f"{m.strftime('%b %Y')}: {format_money(v, self.currency)}"
            for m, v in zip(self.months, self.values, strict=True)
        )
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
            f'class="dashboard-chart" data-metric="{escape(self.metric)}" data-currency="{self.currency}" '
            f'aria-labelledby="{chart_id}-title {chart_id}-desc" font-family="system-ui, sans-serif" font-size="11">',
            f'<title id="{chart_id}-title">{escape(self.title)}</title>',
            f'<desc id="{chart_id}-desc">{escape(label)}, by month: {escape(desc)}.</desc>',
        ]
        for tick in ticks:
            ty = y(tick)
            parts.append(
                f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" '
                f'stroke="{AXIS if tick == 0 else GRID}" stroke-width="1"/>'
            )
            parts.append(
                f'<text x="{LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end" fill="{AXIS}">'
                f"{escape(_compact(tick, self.currency))}</text>"
            )
        for i, month in enumerate(self.months):
            parts.append(
                f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" fill="{AXIS}">'
                f"{month.strftime('%b')}</text>"
            )
            if i == 0 or month.month == 1:
                parts.append(
                    f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 30}" text-anchor="middle" '
                    f'fill="{AXIS}">{month.year}</text>'
                )
        parts.append(self._marks(x, y, slot, color))
        parts.append(
            f'<g class="legend"><rect x="{LEFT}" y="10" width="12" height="12" fill="{color}" rx="2"/>'
            f'<text x="{LEFT + 18}" y="20" fill="#1d273b">{escape(label)} (per month, UTC)</text></g>'
        )
        parts.append("</svg>")
        return "\n".join(parts)

    def _marks(self, fx: Callable[[int], float], fy: Callable[[int], float], slot: float, color: str) -> str:
        marks: list[str] = []
        if self.kind == "bar":
            zero = fy(0)
            for i, value in enumerate(self.values):
                top, bottom = sorted((fy(value), zero))
                marks.append(
                    f'<rect x="{fx(i) - slot * 0.35:.1f}" y="{top:.1f}" width="{slot * 0.7:.1f}" '
                    f'height="{max(bottom - top, 0.5):.1f}" fill="{color}" rx="2">'
                    f"<title>{self.months[i].strftime('%b %Y')}: {escape(format_money(value, self.currency))}"
                    f"</title></rect>"
                )
        else:
            points = " ".join(f"{fx(i):.1f},{fy(v):.1f}" for i, v in enumerate(self.values))
            marks.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2.5"/>')
            for i, value in enumerate(self.values):
                marks.append(
                    f'<circle cx="{fx(i):.1f}" cy="{fy(value):.1f}" r="3.5" fill="{color}">'
                    f"<title>{self.months[i].strftime('%b %Y')}: {escape(format_money(value, self.currency))}"
                    f"</title></circle>"
                )
        return "\n".join(marks)


def series_charts(metric: str, months: list[datetime], values: dict[str, list[int]], *, kind: str) -> list[Chart]:
    """One chart per currency of a monthly series, titled by metric and currency."""
    return [
        Chart(
            title=f"{metric} per month, {currency.upper()}",
            metric=metric,
            currency=currency,
            months=months,
            values=series,
            kind=kind,
        )
        for currency, series in values.items()
    ]
