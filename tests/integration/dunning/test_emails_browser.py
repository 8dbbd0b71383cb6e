"""The notices as a mail reader shows them: every notice in English and Thai renders in a real browser, with the
right words, a working-looking button where there is one, and a text part that says the same."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from payment.dunning import notices
from payment.dunning.render import render

LINK = "http://127.0.0.1:8000/billing/tok_example"
DATA = {
    "invoiceId": 7,
    "amountCents": 29900,
    "currency": "thb",
    "plan": "Vega Pro",
    "graceEndsAt": "2026-12-11T09:00:00+00:00",
    "paidAt": "2026-12-04T09:00:00+00:00",
    "endedAt": "2026-12-04T09:00:00+00:00",
    "endsAt": "2027-01-04T09:00:00+00:00",
    "reference": "in_123",
}


def _payload(notice: str, locale: str | None, name: str | None = "Dana") -> dict[str, object]:
    return {
        "notice": notice,
        "to": "dana@example.com",
        "name": name,
        "locale": locale,
        "customerId": 1,
        "appId": 1,
        "data": DATA,
    }


@pytest.mark.parametrize(
    ("locale", "subject", "button", "amount"),
    [
        ("en", "Your payment for Vega Pro did not go through", "Update your card", "THB\u00a0299.00"),
        ("th-TH", "การชำระเงินสำหรับ Vega Pro ไม่สำเร็จ", "อัปเดตบัตรของคุณ", "฿299.00"),
    ],
)
def test_the_payment_failed_email_renders_in_the_users_language(
    page: Page, tmp_path: Path, locale: str, subject: str, button: str, amount: str
) -> None:
    email = render(_payload(notices.PAYMENT_FAILED, locale), link=LINK)
    assert email.subject == subject
    page.set_viewport_size({"width": 640, "height": 720})
    page.set_content(email.html)
    expect(page.get_by_text(subject, exact=True).first).to_be_visible()
    expect(page.get_by_role("link", name=button)).to_have_attribute("href", LINK)
    expect(page.get_by_text(amount, exact=True)).to_be_visible()
    shot = tmp_path / f"payment_failed-{locale}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert f"{button}: {LINK}" in email.text and amount in email.text and "<" not in email.text


@pytest.mark.parametrize("notice", notices.NOTICES)
@pytest.mark.parametrize("locale", ["en", "th"])
def test_every_notice_has_both_languages_and_a_button_only_where_it_helps(notice: str, locale: str) -> None:
    email = render(_payload(notice, locale, name=None), link=LINK)
    assert email.language == locale and email.subject and "{" not in email.subject + email.text
    assert (LINK in email.html) == (notice in notices.WITH_BILLING_LINK)
    thai = any("\u0e00" <= ch <= "\u0e7f" for ch in email.text)
    assert thai == (locale == "th")


def test_names_in_an_email_are_escaped_in_html_and_kept_in_text() -> None:
    email = render(_payload(notices.RECEIPT, "en", name="<b>Eve</b>"), link=None)
    assert "&lt;b&gt;Eve&lt;/b&gt;" in email.html and "<b>Eve</b>" not in email.html
    assert "Hello <b>Eve</b>," in email.text
