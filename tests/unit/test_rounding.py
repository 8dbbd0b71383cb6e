"""Dashboard figures round exact halves up, on exact fractions (never floats)."""

from __future__ import annotations

from fractions import Fraction

from payment.dashboard.metrics import round_half_up


def test_round_half_up_rounds_exact_halves_up() -> None:
    assert [round_half_up(Fraction(n, 2)) for n in (1, 3, 5, 229235)] == [1, 2, 3, 114618]
    assert round_half_up(Fraction(10000, 3)) == 3333
    assert round_half_up(Fraction(20000, 3)) == 6667
