"""A test that needs a file of ../shared skips with a hint where it is missing, and fails under CI=true."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.support.shared import STRIPE_FIXTURES, find_shared, require_shared

NOWHERE = Path("/nonexistent/checkout/repo/tests/support/shared.py")


def test_the_nearest_shared_folder_above_the_checkout_is_found() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "shared" / "stripe").mkdir(parents=True)
        (root / "shared" / STRIPE_FIXTURES).write_text("{}")
        worktree = root / "wt" / "feature" / "tests" / "support" / "shared.py"
        assert find_shared(STRIPE_FIXTURES, start=worktree) == root / "shared" / STRIPE_FIXTURES


def test_a_missing_file_skips_with_a_hint_on_a_developer_machine() -> None:
    with pytest.raises(pytest.skip.Exception, match="put a copy there"):
        require_shared(STRIPE_FIXTURES, "put a copy there", start=NOWHERE, environ={})


def test_a_missing_file_fails_under_ci() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"fixtures3\.json not found"):
        require_shared(STRIPE_FIXTURES, "put a copy there", start=NOWHERE, environ={"CI": "true"})
