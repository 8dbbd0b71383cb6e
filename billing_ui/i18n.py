"""English and Thai strings for the billing pages: a small dict catalogue (two languages, no build step)."""

from __future__ import annotations

from collections.abc import Callable

from billing_ui import i18n_manage as manage
from billing_ui import i18n_promo as promo

LANGUAGES = {"en": "English", "th": "ไทย"}
DEFAULT = "en"

EN: dict[str, str] = {
    "billing": "Billing",
    "skip": "Skip to content",
    "language": "Language",
    "your_plan": "Your plan",
    "status_free": "Free",
    "status_active": "Active",
    "status_trialing": "Trial",
    "status_past_due": "Payment past due",
    "status_cancels": "Cancels on {date}",
    "renews_on": "Renews on {date}.",
    "active_until": "Active until {date}.",
    "trial_ends": "Trial ends on {date}.",
    "trial_offer": "{days}-day free trial",
    "trial_offer_no_card": "{days}-day free trial, no card needed",
    "trial_not_offered": "No free trial: you have already had one in {app}.",
    "notice_trial_refused": "Your free trial was not started: this card has already had a free trial in {app}, "
    "so your plan started at once and the card was charged.",
    "notice_trial_refused_customer": "Your free trial was not started: you have already had one in {app}, so your "
    "plan started at once.",
    "cancels_on": "Your plan stays active until {date}, then ends.",
    "past_due_help": "Your last payment did not go through. Use Update card below to keep {plan}; "
    "we will retry the payment automatically.",
    "past_due_help_manual": "Your last payment did not go through. Please contact support to keep {plan}.",
    "past_due_retry": "Stripe will try your card again on {date}.",
    "free_help": "You are on the free plan. Upgrade any time below.",
    "plans": "Plans",
    "per_month": "per month",
    "per_year": "per year",
    "subscribe": "Subscribe",
    "subscribe_to": "Subscribe to {plan}",
    "current_plan": "Current plan",
    "change_not_now": "Plan changes open here once your subscription is active and paid up.",
    "included": "Included",
    "invoices": "Invoice history",
    "no_invoices": "No invoices yet.",
    "dates_zone": "Dates are in Bangkok time (UTC+7).",
    "col_date": "Date",
    "col_amount": "Amount",
    "col_status": "Status",
    "invoice_paid": "Paid",
    "invoice_open": "Open",
    "invoice_draft": "Draft",
    "invoice_payment_failed": "Payment failed",
    "invoice_refunded": "Refunded",
    "invoice_partially_refunded": "Partly refunded",
    "invoice_void": "Void",
    "invoice_uncollectible": "Uncollectible",
    "col_documents": "Tax invoice / receipt",
    "doc_tax_invoice": "Tax invoice {number}",
    "doc_credit_note": "Credit note {number}",
    "doc_preparing": "Being prepared",
    "buyer_heading": "Details for tax invoices",
    "buyer_help": "Add your company's name, address and 13-digit tax id to have them printed on your tax invoices. "
    "Documents already issued are re-issued with these details.",
    "buyer_company": "Company name",
    "buyer_address": "Address",
    "buyer_tax_id": "Tax id (13 digits)",
    "buyer_branch": "Branch (00000 = head office)",
    "buyer_save": "Save details",
    "notice_buyer_saved": "Saved. Your tax invoices will show these details within a minute.",
    "error_buyer_invalid": "Check the details: a tax id has 13 digits with a valid check digit, and needs the "
    "company name and address with it.",
    "back_to": "Back to {app}",
    "notice_canceled": "Checkout was canceled and nothing was charged. You are still on {plan}.",
    "notice_subscribed": "You are subscribed to {plan}. Thank you!",
    "processing_title": "Processing your payment…",
    "processing_text": "This usually takes a few seconds. This page updates by itself.",
    "processing_slow": "This is taking longer than usual. You can leave this page: your plan changes as soon as the "
    "payment is confirmed.",
    "processing_refresh": "Check again",
    "checkout_expired": "That checkout expired before it was paid. Nothing was charged.",
    "back_to_billing": "Back to billing",
    "link_expired_title": "This billing link has expired",
    "link_expired_text": "For your security, billing links work for a short time only. Go back to {app} and open "
    "Billing again.",
    "link_unknown_title": "This billing link is not valid",
    "link_unknown_text": "Go back to the app you came from and open Billing again.",
    "go_back": "Go back",
    "error_already_subscribed": "You already have an active subscription. Change or cancel it on this page.",
    "error_checkout_processing": "Your payment is being processed; your plan will show here in a moment.",
    "error_checkout_busy": "Your checkout is being prepared in another tab or window. Wait a moment, then try again.",
    "error_plan_not_found": "That plan is not available any more. Please choose another one.",
    "error_plan_is_free": "The free plan needs no payment.",
    "error_stripe": "We could not reach the payment provider. Nothing was charged; please try again in a moment.",
    "error_no_stripe_billing": "There is no card billing to manage yet.",
    "error_form_expired": "This page was open for too long or came from another site. Reload it and try again.",
    "unknown_checkout": "We could not find that checkout.",
}

TH: dict[str, str] = {
    "billing": "การชำระเงิน",
    "skip": "ข้ามไปที่เนื้อหา",
    "language": "ภาษา",
    "your_plan": "แพ็กเกจของคุณ",
    "status_free": "ฟรี",
    "status_active": "ใช้งานอยู่",
    "status_trialing": "ทดลองใช้",
    "status_past_due": "ค้างชำระ",
    "status_cancels": "สิ้นสุดวันที่ {date}",
    "renews_on": "ต่ออายุอัตโนมัติวันที่ {date}",
    "active_until": "ใช้งานได้ถึงวันที่ {date}",
    "trial_ends": "ช่วงทดลองใช้สิ้นสุดวันที่ {date}",
    "trial_offer": "ทดลองใช้ฟรี {days} วัน",
    "trial_offer_no_card": "ทดลองใช้ฟรี {days} วัน ไม่ต้องใช้บัตร",
    "trial_not_offered": "ไม่มีช่วงทดลองใช้ฟรี: คุณเคยทดลองใช้ใน {app} แล้ว",
    "notice_trial_refused": "ไม่ได้เริ่มช่วงทดลองใช้ฟรี: บัตรนี้เคยใช้ทดลองใช้ฟรีใน {app} แล้ว "
    "แผนของคุณจึงเริ่มทันทีและเรียกเก็บเงินจากบัตรแล้ว",
    "notice_trial_refused_customer": "ไม่ได้เริ่มช่วงทดลองใช้ฟรี: คุณเคยทดลองใช้ใน {app} แล้ว แผนของคุณจึงเริ่มทันที",
    "cancels_on": "แพ็กเกจของคุณใช้งานได้ถึงวันที่ {date} แล้วจะสิ้นสุด",
    "past_due_help": "การชำระเงินครั้งล่าสุดไม่สำเร็จ โปรดกด “อัปเดตบัตร” ด้านล่าง เพื่อใช้ {plan} ต่อ "
    "ระบบจะลองเรียกเก็บเงินอีกครั้งโดยอัตโนมัติ",
    "past_due_help_manual": "การชำระเงินครั้งล่าสุดไม่สำเร็จ โปรดติดต่อฝ่ายสนับสนุนเพื่อใช้ {plan} ต่อ",
    "past_due_retry": "ระบบจะลองตัดเงินจากบัตรของคุณอีกครั้งในวันที่ {date}",
    "free_help": "คุณใช้แพ็กเกจฟรีอยู่ อัปเกรดได้ทุกเมื่อด้านล่าง",
    "plans": "แพ็กเกจ",
    "per_month": "ต่อเดือน",
    "per_year": "ต่อปี",
    "subscribe": "สมัครสมาชิก",
    "subscribe_to": "สมัครสมาชิก {plan}",
    "current_plan": "แพ็กเกจปัจจุบัน",
    "change_not_now": "เปลี่ยนแพ็กเกจได้ที่หน้านี้เมื่อการสมัครสมาชิกของคุณใช้งานอยู่และชำระเงินครบแล้ว",
    "included": "สิ่งที่ได้รับ",
    "invoices": "ประวัติใบแจ้งหนี้",
    "no_invoices": "ยังไม่มีใบแจ้งหนี้",
    "dates_zone": "วันที่ทั้งหมดเป็นเวลากรุงเทพฯ (UTC+7)",
    "col_date": "วันที่",
    "col_amount": "จำนวนเงิน",
    "col_status": "สถานะ",
    "invoice_paid": "ชำระแล้ว",
    "invoice_open": "รอชำระ",
    "invoice_draft": "ฉบับร่าง",
    "invoice_payment_failed": "ชำระไม่สำเร็จ",
    "invoice_refunded": "คืนเงินแล้ว",
    "invoice_partially_refunded": "คืนเงินบางส่วน",
    "invoice_void": "ยกเลิก",
    "invoice_uncollectible": "เรียกเก็บไม่ได้",
    "col_documents": "ใบกำกับภาษี / ใบเสร็จ",
    "doc_tax_invoice": "ใบกำกับภาษี {number}",
    "doc_credit_note": "ใบลดหนี้ {number}",
    "doc_preparing": "กำลังจัดทำ",
    "buyer_heading": "ข้อมูลสำหรับใบกำกับภาษี",
    "buyer_help": "ระบุชื่อบริษัท ที่อยู่ และเลขประจำตัวผู้เสียภาษี 13 หลัก เพื่อพิมพ์ลงในใบกำกับภาษี "
    "เอกสารที่ออกไปแล้วจะออกใหม่แทนฉบับเดิมด้วยข้อมูลนี้",
    "buyer_company": "ชื่อบริษัท",
    "buyer_address": "ที่อยู่",
    "buyer_tax_id": "เลขประจำตัวผู้เสียภาษี (13 หลัก)",
    "buyer_branch": "สาขา (00000 = สำนักงานใหญ่)",
    "buyer_save": "บันทึกข้อมูล",
    "notice_buyer_saved": "บันทึกแล้ว ใบกำกับภาษีของคุณจะแสดงข้อมูลนี้ภายในหนึ่งนาที",
    "error_buyer_invalid": "โปรดตรวจสอบข้อมูล: เลขประจำตัวผู้เสียภาษีมี 13 หลักและหลักสุดท้ายต้องถูกต้อง และต้องระบุชื่อบริษัทและที่อยู่ด้วย",
    "back_to": "กลับไปที่ {app}",
    "notice_canceled": "ยกเลิกการชำระเงินแล้ว ไม่มีการเรียกเก็บเงิน คุณยังใช้ {plan} อยู่",
    "notice_subscribed": "สมัครสมาชิก {plan} เรียบร้อยแล้ว ขอบคุณ",
    "processing_title": "กำลังดำเนินการชำระเงิน…",
    "processing_text": "โดยปกติใช้เวลาไม่กี่วินาที หน้านี้จะอัปเดตเอง",
    "processing_slow": "ใช้เวลานานกว่าปกติ คุณออกจากหน้านี้ได้ แพ็กเกจของคุณจะเปลี่ยนทันทีที่ยืนยันการชำระเงิน",
    "processing_refresh": "ตรวจสอบอีกครั้ง",
    "checkout_expired": "การชำระเงินนี้หมดเวลาก่อนชำระ ไม่มีการเรียกเก็บเงิน",
    "back_to_billing": "กลับไปหน้าการชำระเงิน",
    "link_expired_title": "ลิงก์นี้หมดอายุแล้ว",
    "link_expired_text": "เพื่อความปลอดภัย ลิงก์การชำระเงินใช้ได้ในเวลาจำกัด โปรดกลับไปที่ {app} แล้วเปิดหน้าการชำระเงินอีกครั้ง",
    "link_unknown_title": "ลิงก์นี้ไม่ถูกต้อง",
    "link_unknown_text": "โปรดกลับไปที่แอปที่คุณมา แล้วเปิดหน้าการชำระเงินอีกครั้ง",
    "go_back": "ย้อนกลับ",
    "error_already_subscribed": "คุณมีการสมัครสมาชิกที่ใช้งานอยู่แล้ว เปลี่ยนหรือยกเลิกได้ที่หน้านี้",
    "error_checkout_processing": "กำลังดำเนินการชำระเงินของคุณ แพ็กเกจจะแสดงที่นี่ในไม่ช้า",
    "error_checkout_busy": "กำลังเตรียมการชำระเงินของคุณในแท็บหรือหน้าต่างอื่น โปรดรอสักครู่แล้วลองอีกครั้ง",
    "error_plan_not_found": "แพ็กเกจนี้ไม่มีให้บริการแล้ว โปรดเลือกแพ็กเกจอื่น",
    "error_plan_is_free": "แพ็กเกจฟรีไม่ต้องชำระเงิน",
    "error_stripe": "ไม่สามารถติดต่อผู้ให้บริการชำระเงินได้ ไม่มีการเรียกเก็บเงิน โปรดลองอีกครั้ง",
    "error_no_stripe_billing": "ยังไม่มีการชำระเงินด้วยบัตรให้จัดการ",
    "error_form_expired": "หน้านี้เปิดไว้นานเกินไปหรือมาจากเว็บไซต์อื่น โปรดโหลดหน้าใหม่แล้วลองอีกครั้ง",
    "unknown_checkout": "ไม่พบการชำระเงินนี้",
}

EN.update({k: v for k, v in manage.EN.items() if k not in EN})
TH.update({k: v for k, v in manage.TH.items() if k not in TH})
EN.update({k: v for k, v in promo.EN.items() if k not in EN})
TH.update({k: v for k, v in promo.TH.items() if k not in TH})
CATALOGUES = {"en": EN, "th": TH}
ERROR_KEYS = {
    "buyer_invalid": "error_buyer_invalid",
    "already_subscribed": "error_already_subscribed",
    "checkout_processing": "error_checkout_processing",
    "checkout_busy": "error_checkout_busy",
    "plan_not_found": "error_plan_not_found",
    "plan_is_free": "error_plan_is_free",
    "no_stripe_billing": "error_no_stripe_billing",
    "stripe": "error_stripe",
    **manage.ERROR_KEYS,
}


def supported(tag: str | None) -> str | None:
    """`th-TH` -> `th`; None when the language is not one we have."""
    if not tag:
        return None
    primary = tag.strip().lower().replace("_", "-").split("-")[0]
    return primary if primary in CATALOGUES else None


def from_accept_language(header: str | None) -> str | None:
    """The best supported language of an Accept-Language header, by q-value."""
    choices: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        language = supported(tag)
        if language and quality > 0:
            choices.append((-quality, position, language))
    return min(choices)[2] if choices else None


def choose(requested: str | None, session_locale: str | None, accept_language: str | None) -> str:
    """The switch link's choice, else the locale the app sent, else the browser's, else English."""
    return supported(requested) or supported(session_locale) or from_accept_language(accept_language) or DEFAULT


def translator(language: str) -> Callable[..., str]:
    catalogue = CATALOGUES.get(language, EN)

    def t(key: str, **values: object) -> str:
        text = catalogue.get(key) or EN.get(key) or key
        return text.format(**values) if values else text

    return t
