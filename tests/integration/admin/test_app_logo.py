"""An app's optional logo for its billing pages: https only, cleared with an empty field."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from payment.apps import service as apps
from payment.errors import ValidationError

SECRET = "x" * 40


async def test_logo_is_https_only_and_can_be_cleared(db: AsyncSession) -> None:
    for bad in ("http://cdn.example.com/logo.png", "javascript:alert(1)", "https://"):
        with pytest.raises(ValidationError, match="Logo URL must be an https:// address") as refused:
            await apps.create_app(
                db,
                slug="logo-bad",
                name="Bad",
                return_url="https://x.example.com",
                secret_key=SECRET,
                actor="test",
                logo_url=bad,
            )
        assert refused.value.field == "logo_url"
    issued = await apps.create_app(
        db,
        slug="logo-ok",
        name="Ok",
        return_url="https://x.example.com",
        secret_key=SECRET,
        actor="test",
        logo_url=" https://cdn.example.com/l.svg ",
    )
    assert issued.app.logo_url == "https://cdn.example.com/l.svg"
    kept = await apps.update_app(
        db, issued.app, name="Ok", return_url="https://x.example.com", is_active=True, actor="test"
    )
    assert kept.logo_url == "https://cdn.example.com/l.svg"  # not given: unchanged
    cleared = await apps.update_app(
        db, issued.app, name="Ok", return_url="https://x.example.com", is_active=True, actor="test", logo_url=""
    )
    assert cleared.logo_url is None
