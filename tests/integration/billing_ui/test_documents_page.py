"""Billing page: the user's tax invoices to download (only theirs, audited) and their company details."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from payment.billing.customers import get_by_external_id
from payment.documents import runner
from payment.models import AuditLog, Customer, Document
from payment.runtime import Services
from tests.integration.billing_ui.helpers import Scene, build_scene, csrf_of, open_billing, text_of
from tests.integration.documents.helpers import BUYER_TAX_ID, suite_seller
from tests.support import factories
from tests.support.app import ThreadServer
from tests.support.stripe import reset_sandbox

LINK = re.compile(r'href="(/billing/[^"]+/documents/(\d+))"')


@pytest.fixture(scope="module")
async def scene(services: Services, sandbox_server: ThreadServer) -> AsyncIterator[Scene]:
    reset_sandbox(sandbox_server.url)
    yield await build_scene(services)


async def paying_user(client: httpx.AsyncClient, scene: Scene, services: Services) -> tuple[str, Customer]:
    path, user = await open_billing(client, scene)
    async with services.db.transaction() as session:
        cust = await get_by_external_id(session, user)
        assert cust is not None
        sub = await factories.create_subscription(session, cust, scene.pro)
        await factories.create_invoice(session, cust, subscription=sub, amount_cents=29900)
    await suite_seller(services.db)
    await runner.run(services.db)
    return path, cust


async def test_the_user_downloads_their_tax_invoice_and_only_theirs(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    path, cust = await paying_user(client, scene, services)
    other_path, _ = await paying_user(client, scene, services)
    html = (await client.get(path)).text
    [(url, doc_id)] = LINK.findall(html)
    assert re.search(r"Tax invoice TI\d{4}-\d{6}", text_of(html))
    response = await client.get(url)
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    async with services.db.session() as session:
        doc = await session.get(Document, int(doc_id))
        audited = (
            (
                await session.execute(
                    select(AuditLog.actor).where(AuditLog.action == "document.downloaded", AuditLog.entity_id == doc_id)
                )
            )
            .scalars()
            .all()
        )
    assert doc is not None and response.content == doc.pdf and doc.customer_id == cust.id
    assert audited == [f"customer:{cust.id}"]
    # another user's link with this document's id finds nothing
    other_token = other_path.rsplit("/", 1)[1]
    assert (await client.get(f"/billing/{other_token}/documents/{doc_id}")).status_code == 404


async def test_company_details_after_paying_reissue_the_tax_invoice(
    client: httpx.AsyncClient, scene: Scene, services: Services
) -> None:
    path, cust = await paying_user(client, scene, services)
    page = (await client.get(path)).text
    [(_, first_id)] = LINK.findall(page)
    bad = await client.post(
        f"{path}/buyer",
        data={
            "csrf": csrf_of(page),
            "lang": "en",
            "company_name": "Acme",
            "address": "1 Silom",
            "tax_id": "1234567890123",
        },
    )
    assert bad.status_code == 303
    assert "13 digits with a valid check digit" in text_of((await client.get(bad.headers["location"])).text)

    good = await client.post(
        f"{path}/buyer",
        data={
            "csrf": csrf_of(page),
            "lang": "en",
            "company_name": "Acme Thailand Co., Ltd.",
            "address": "1 Silom Road, Bangkok",
            "tax_id": BUYER_TAX_ID,
        },
    )
    assert good.status_code == 303
    after = (await client.get(good.headers["location"])).text
    assert "Your tax invoices will show these details" in text_of(after)
    assert 'value="Acme Thailand Co., Ltd."' in after
    await runner.run(services.db)
    [(_, new_id)] = LINK.findall((await client.get(path)).text)  # only the current version is offered
    async with services.db.session() as session:
        new = await session.get(Document, int(new_id))
    assert new is not None and new.replaces_id == int(first_id) and new.buyer_tax_id == BUYER_TAX_ID
    assert new.buyer_name == "Acme Thailand Co., Ltd." and new.customer_id == cust.id
