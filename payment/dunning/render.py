"""Rendering a queued notice as an email (subject, HTML, plain text) in the user's language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.numbers import format_currency, get_currency_precision
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from payment.dunning import notices
from payment.dunning.strings import CATALOGUES, language_of

BRAND = "Aquoris"
# Stripe's `missing_payment_method` choices, each told in its own words
TRIAL_END_BEHAVIORS = ("cancel", "pause", "create_invoice")
BABEL_LOCALES = {"en": "en_US", "th": "th_TH"}
# we do not know the user's zone; Thai readers are almost all in Bangkok, others get UTC
ZONES = {"th": ZoneInfo("Asia/Bangkok")}

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    html: str
    text: str
    language: str


def money(amount_cents: int, currency: str, language: str) -> str:
    """Integer minor units -> "฿299.00"; Decimal only for display, never floats."""
    code = currency.upper()
    amount = Decimal(amount_cents).scaleb(-get_currency_precision(code))
    text = str(format_currency(amount, code, locale=BABEL_LOCALES[language]))
    # Babel writes "THB299.00" where the locale has no symbol for the currency: keep the code readable
    if text[:3] == code and len(text) > 3 and not text[3].isspace():
        text = f"{code}\u00a0{text[3:]}"
    return text


def day(value: str | None, language: str) -> str:
    if not value:
        return ""
    moment = datetime.fromisoformat(value).astimezone(ZONES.get(language, ZoneInfo("UTC")))
    return str(format_date(moment.date(), "long", locale=BABEL_LOCALES[language]))


def _trial_end_behavior(data: dict[str, Any]) -> str:
    """What Stripe does when a trial ends without a card (`trial_settings.end_behavior.missing_payment_method`)."""
    behavior = str(data.get("endBehavior") or "")
    return behavior if behavior in TRIAL_END_BEHAVIORS else "cancel"


def render(payload: dict[str, Any], *, link: str | None = None) -> Email:
    """The email of an outbox payload; `link` is the billing link the button opens (notices that have one)."""
    notice, data = payload["notice"], payload["data"]
    language = language_of(payload.get("locale"))
    words = CATALOGUES[language]
    values = {
        "name": payload.get("name") or "",
        "brand": BRAND,
        "plan": data.get("plan") or "",
        "amount": money(data["amountCents"], data["currency"], language) if "amountCents" in data else "",
        "grace_end": day(data.get("graceEndsAt"), language),
        "retry_date": day(data.get("nextAttemptAt"), language),
        "date": day(data.get("endedAt") or data.get("endsAt") or data.get("trialEnd") or data.get("paidAt"), language),
    }

    def t(key: str) -> str:
        return words[key].format(**values)

    details: list[tuple[str, str]] = []
    if values["plan"]:
        details.append((t("plan"), values["plan"]))
    if notice == notices.RECEIPT and data.get("discountCents"):  # what was paid, from the price and its discount
        details.append((t("subtotal"), money(data["subtotalCents"], data["currency"], language)))
        details.append((t("discount"), "-" + money(data["discountCents"], data["currency"], language)))
        details.append((t("total"), values["amount"]))
    elif values["amount"]:
        details.append((t("amount"), values["amount"]))
    if notice == notices.RECEIPT:
        details.append((t("date"), values["date"]))
        if data.get("reference"):
            details.append((t("reference"), str(data["reference"])))
    subject = t(f"{notice}.subject")
    body = t(f"{notice}.body")
    button_key = f"{notice}.button"
    if notice == notices.PAYMENT_FAILED and values["retry_date"]:  # Stripe has scheduled a retry
        body = f"{body} {t('payment_failed.retry')}"
    if notice == notices.TRIAL_ENDING and data.get("card") is False:  # nothing to charge: say what Stripe does
        body = t(f"trial_ending.body_without_card.{_trial_end_behavior(data)}")
        button_key = "trial_ending.button_without_card"
    context: dict[str, Any] = {
        "language": language,
        "brand": BRAND,
        "subject": subject,
        "greeting": t("greeting") if values["name"] else t("greeting_anonymous"),
        "lead": t(f"{notice}.lead"),
        "body": body,
        "details": details,
        "button": t(button_key) if link and notice in notices.WITH_BILLING_LINK else None,
        "link": link,
        "footer": t("footer"),
    }
    return Email(
        to=payload["to"],
        subject=subject,
        html=_env.get_template("email.html").render(context),
        text=_env.get_template("email.txt").render(context),
        language=language,
    )
