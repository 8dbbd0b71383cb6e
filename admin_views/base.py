"""The base of our SQLAdmin views."""

from __future__ import annotations

from typing import Any

from sqladmin import ModelView
from starlette.exceptions import HTTPException

BIGINT_MAX = 2**63 - 1


class IntegerPkView(ModelView):
    """Every table of ours has a bigint id: anything else in a URL is a 404, not a crash in SQLAdmin's coercion."""

    def _stmt_by_identifier(self, identifier: str) -> Any:
        if not identifier.isdigit() or int(identifier) > BIGINT_MAX:
            raise HTTPException(status_code=404, detail="No such record.")
        return super()._stmt_by_identifier(identifier)
