"""The admin's Coupons page: create a coupon with its code (at Stripe, the sandbox here, and then here), see field
errors without losing the form, deactivate the code."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from payment.config import Settings
from payment.models import AuditLog, Coupon, PromotionCode
from payment.runtime import Services
from tests.integration.admin.conftest import page_token
from tests.support.app import ThreadServer
from tests.support.db import settings_for
from tests.support.stripe import sandbox_call


@pytest.fixture(scope="module")
def admin_settings(database_url: str, sandbox_server: ThreadServer) -> Settings:
    return settings_for(database_url, stripe_api_base=sandbox_server.url)


async def test_create_a_coupon_with_its_code_then_deactivate_it(
    admin: httpx.AsyncClient, admin_services: Services, sandbox_server: ThreadServer
) -> None:
    page = await admin.get("/admin/coupons")
    assert page.status_code == 200 and "No coupons yet" in page.text
    token = await page_token(admin, "/admin/coupons")
    form = {
        "csrf_token": token,
        "name": "Spring sale",
        "percent_off": "",
        "amount_off": "50.00",
        "currency": "thb",
        "duration": "repeating",
        "duration_in_months": "",
        "code": "SPRING50",
        "request_key": "admin-test-1",
    }
    refused = await admin.post("/admin/coupons/add", data=form)
    assert refused.status_code == 422
    assert "A repeating coupon lasts 1 to 36 months." in refused.text
    assert 'value="SPRING50"' in refused.text  # nothing typed is lost

    form.update(duration_in_months="3", csrf_token=await page_token(admin, "/admin/coupons"))
    created = await admin.post("/admin/coupons/add", data=form)
    assert created.status_code == 303, created.text
    listing = (await admin.get("/admin/coupons")).text
    assert "Spring sale" in listing and "THB" in listing and "off for 3 months" in listing and "SPRING50" in listing
    async with admin_services.db.session() as session:
        coupon = await session.scalar(select(Coupon).where(Coupon.name == "Spring sale"))
        assert coupon is not None and coupon.amount_off_cents == 5000 and coupon.duration_in_months == 3
        code = await session.scalar(select(PromotionCode).where(PromotionCode.coupon_id == coupon.id))
        assert code is not None and code.active
    at_stripe = (await sandbox_call("GET", f"{sandbox_server.url}/v1/coupons/{coupon.stripe_coupon_id}")).json()
    assert (at_stripe["amount_off"], at_stripe["currency"], at_stripe["duration_in_months"]) == (5000, "thb", 3)

    token = await page_token(admin, "/admin/coupons")
    done = await admin.post(f"/admin/promotion-codes/{code.id}/deactivate", data={"csrf_token": token})
    assert done.status_code == 303
    assert "Inactive" in (await admin.get("/admin/coupons")).text
    promo = (
        await sandbox_call("GET", f"{sandbox_server.url}/v1/promotion_codes/{code.stripe_promotion_code_id}")
    ).json()
    assert promo["active"] is False
    async with admin_services.db.session() as session:
        actions = set(
            (
                await session.scalars(
                    select(AuditLog.action).where(
                        AuditLog.action.like("%coupon%") | AuditLog.action.like("promotion_code%")
                    )
                )
            ).all()
        )
    assert actions == {"coupon.created", "promotion_code.deactivated"}
