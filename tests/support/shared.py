"""Reference files from `../shared` (beside the repository, or beside a parent folder of worktrees), never copied
into the project. A test that needs one skips with a hint where it is missing, and fails under CI=true: CI has it,
so there a missing file is a broken checkout, not a reason to run fewer tests."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STRIPE_FIXTURES = "stripe/fixtures3.json"


def find_shared(relative: str, *, start: Path = REPO_ROOT) -> Path | None:
    """`shared/<relative>` in the nearest folder above `start` that has it."""
    for folder in start.parents:
        candidate = folder / "shared" / relative
        if candidate.is_file():
            return candidate
    return None


def require_shared(
    relative: str, why: str, *, start: Path = REPO_ROOT, environ: Mapping[str, str] = os.environ
) -> Path:
    """The path of `shared/<relative>`; skips the calling test with a hint when it is missing, fails under CI=true."""
    found = find_shared(relative, start=start)
    if found is not None:
        return found
    hint = f"{relative} not found in {start.parent / 'shared'} (nor in a shared/ folder further up)"
    if environ.get("CI") == "true":
        pytest.fail(hint)
    pytest.skip(f"{hint}; {why}")


def stripe_fixtures() -> dict[str, Any]:
    """Stripe's example objects (stripe/openapi's fixtures3.json), by type."""
    path = require_shared(STRIPE_FIXTURES, "put a copy of stripe/openapi's fixtures3.json there to run these tests")
    data: dict[str, Any] = json.loads(path.read_text())["resources"]
    return data
