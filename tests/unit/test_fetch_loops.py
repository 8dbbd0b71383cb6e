"""How `payment worker` splits its slots over Procrastinate fetch loops."""

from __future__ import annotations

import pytest

from payment.jobs.worker import SLOTS_PER_FETCH_LOOP, fetch_loop_slots


@pytest.mark.parametrize(
    ("concurrency", "slots"),
    [
        (1, [1]),
        (2, [2]),
        (SLOTS_PER_FETCH_LOOP, [SLOTS_PER_FETCH_LOOP]),
        (SLOTS_PER_FETCH_LOOP + 1, [17, 16]),
        (128, [32, 32, 32, 32]),
        (130, [26, 26, 26, 26, 26]),
        (1000, [32] * 8 + [31] * 24),
    ],
)
def test_every_slot_is_served_by_one_loop_of_at_most_32(concurrency: int, slots: list[int]) -> None:
    split = fetch_loop_slots(concurrency)
    assert split == slots
    assert sum(split) == concurrency and max(split) <= SLOTS_PER_FETCH_LOOP
