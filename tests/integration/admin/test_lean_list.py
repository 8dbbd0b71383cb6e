"""The subscriptions list's rows are built in Python (admin_views/records.py) instead of a Jinja template per row:
the same columns, links, labels and escaping as the template they replaced, held side by side here."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import jinja2
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from admin_views.setup import install_filters
from payment.models import Subscription, utcnow
from payment.runtime import Services
from tests.support import factories

# admin/rows/subscription.html as it was before the rows were built in Python: the reference rendering
REFERENCE_ROW = """<tr data-row-id="{{ row.id }}">
  <td><a href="{{ url_for('admin:details', identity='subscription', pk=row.id) }}">#{{ row.id }}</a></td>
  <td><a href="{{ url_for('admin:details', identity='customer', pk=row.customer_id) }}">{{ row.customer.email or row.customer.external_user_id }}</a></td>
  <td>{{ row.plan.name }}</td>
  <td>{{ row.status|status_badge }}</td>
  <td>{{ row.source }}</td>
  <td>{{ row.current_period_end|when }}</td>
  <td>{% if row.cancels_on %}cancels on {{ row.cancels_on|when }}{% endif %}</td>
  <td>{{ row.created_at|when }}</td>
</tr>
"""  # noqa: E501

HOSTILE = "<b>bold</b> & \"quoted\" 'single'"


def _tight(html: str) -> str:
    return re.sub(r">\s+<", "><", html.strip())


def _rows(html: str) -> list[str]:
    body = re.search(r"<tbody data-infinite-rows>(.*?)</tbody>", html, re.S)
    assert body is not None, html
    return re.findall(r"<tr data-row-id=.*?</tr>", _tight(body.group(1)), re.S)


async def test_lean_rows_match_the_template_they_replace(admin: httpx.AsyncClient, admin_services: Services) -> None:
    now = utcnow()
    async with admin_services.db.transaction() as session:
        plan = await factories.create_plan(session, slug="lean-hostile", name=f"Gold {HOSTILE}")
        named = await factories.create_customer(session, email="lean.person@example.com")
        anonymous = await factories.create_customer(session, external_user_id=f"ext {HOSTILE}")
        anonymous.email = None
        cases: list[dict[str, Any]] = [
            {"status": "active"},
            {"status": "active", "cancel_at_period_end": True},
            {"status": "past_due", "cancel_at": now + timedelta(days=3)},
            {"status": "canceled", "cancel_at_period_end": True},  # ended: no "cancels on"
            {"status": "trialing", "source": "manual"},
            {"status": "incomplete_expired"},
        ]
        for n, case in enumerate(cases):
            await factories.create_subscription(session, anonymous if n % 2 else named, plan, **case)
    response = await admin.get("/admin/subscription/list", params={"plan": str(plan.id)})
    assert response.status_code == 200
    lean = _rows(response.text)
    assert len(lean) == len(cases)

    async with admin_services.db.session() as session:
        subscriptions = (
            await session.scalars(
                select(Subscription)
                .where(Subscription.plan_id == plan.id)
                .options(selectinload(Subscription.customer), selectinload(Subscription.plan))
                .order_by(Subscription.id.desc())
            )
        ).all()
    env = jinja2.Environment(autoescape=True)
    install_filters(env)
    base = str(admin.base_url).rstrip("/")
    env.globals["url_for"] = lambda _name, identity, pk: f"{base}/admin/{identity}/details/{pk}"
    template = env.from_string(REFERENCE_ROW)
    reference = [_tight(template.render(row=row)) for row in subscriptions]
    assert lean == reference

    page = response.text
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt; &amp; &#34;quoted&#34; &#39;single&#39;" in page
    assert page.count("cancels on ") == 2
    assert f'href="{base}/admin/customer/details/{anonymous.id}"' in page


async def test_a_scroll_page_is_built_the_same_way(admin: httpx.AsyncClient) -> None:
    first = await admin.get("/admin/subscription/list", params={"pageSize": "2"})
    next_url = re.search(r'data-next-url="([^"]+)"', first.text)
    assert next_url is not None
    more = await admin.get(next_url.group(1).replace("&amp;", "&"))
    assert more.status_code == 200 and more.headers["x-next-page"]
    rows = _rows(f"<tbody data-infinite-rows>{more.text}</tbody>")
    assert len(rows) == 2 and all('<span class="badge' in row and "/admin/customer/details/" in row for row in rows)
