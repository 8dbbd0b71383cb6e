"""The words of end-user emails in English and Thai; `{name}` placeholders are filled by the renderer."""

from __future__ import annotations

LANGUAGES = ("en", "th")
DEFAULT = "en"

EN: dict[str, str] = {
    "greeting": "Hello {name},",
    "greeting_anonymous": "Hello,",
    "footer": "You receive this email because you have a subscription with {brand}. "
    "It is about your billing and cannot be unsubscribed from.",
    "plan": "Plan",
    "amount": "Amount",
    "subtotal": "Subtotal",
    "discount": "Discount",
    "total": "Total paid",
    "date": "Date",
    "reference": "Reference",
    "payment_failed.subject": "Your payment for {plan} did not go through",
    "payment_failed.lead": "We could not charge your card {amount} for {plan}.",
    "payment_failed.body": "You keep full access until {grace_end}. Update your card and we will retry the "
    "payment automatically.",
    "payment_failed.retry": "Otherwise we will try your card again on {retry_date}.",
    "payment_failed.button": "Update your card",
    "grace_ending.subject": "Your access to {plan} ends on {grace_end}",
    "grace_ending.lead": "Your payment of {amount} for {plan} is still unpaid.",
    "grace_ending.body": "Update your card before {grace_end} to keep your access.",
    "grace_ending.button": "Update your card",
    "access_blocked.subject": "Your access to {plan} is paused",
    "access_blocked.lead": "Your payment of {amount} for {plan} is still unpaid, so your access is paused.",
    "access_blocked.body": "Update your card to pay and get your access back at once.",
    "access_blocked.button": "Update your card",
    "receipt.subject": "Receipt for your payment of {amount}",
    "receipt.lead": "Thank you: we received your payment of {amount}.",
    "receipt.body": "Keep this email as your receipt. Tax invoices can be downloaded from your billing page.",
    "subscription_canceled.subject": "Your {plan} subscription has ended",
    "subscription_canceled.lead": "Your {plan} subscription ended on {date}.",
    "subscription_canceled.body": "You can subscribe again at any time from your billing page.",
    "subscription_ending.subject": "Your {plan} subscription ends on {date}",
    "subscription_ending.lead": "Your {plan} subscription is set to end on {date}.",
    "subscription_ending.body": "You keep access until then. Changed your mind? Renew it from your billing page.",
    "trial_ending.subject": "Your {plan} trial ends on {date}",
    "trial_ending.lead": "Your free trial of {plan} ends on {date}.",
    "trial_ending.body": "Then {amount} is charged to your card on file. To change your card or cancel, open your "
    "billing page.",
    "trial_ending.button": "Manage billing",
    "trial_ending.body_without_card.cancel": "You have not added a card, so your subscription will be cancelled "
    "when the trial ends. To keep {plan} for {amount}, add a card on your billing page before {date}.",
    "trial_ending.body_without_card.pause": "You have not added a card, so your subscription will be paused when "
    "the trial ends, until you add one. To keep {plan} without a break for {amount}, add a card on your billing "
    "page before {date}.",
    "trial_ending.body_without_card.create_invoice": "You have not added a card, so when the trial ends we will "
    "send you an invoice for {amount} to pay. Add a card on your billing page before {date} to have it paid "
    "automatically.",
    "trial_ending.button_without_card": "Add a card",
}

TH: dict[str, str] = {
    "greeting": "สวัสดีคุณ {name}",
    "greeting_anonymous": "สวัสดี",
    "footer": "คุณได้รับอีเมลนี้เนื่องจากคุณมีการสมัครสมาชิกกับ {brand} อีเมลนี้เกี่ยวกับการชำระเงินของคุณ จึงไม่สามารถยกเลิกการรับได้",
    "plan": "แพ็กเกจ",
    "amount": "จำนวนเงิน",
    "subtotal": "ราคาก่อนส่วนลด",
    "discount": "ส่วนลด",
    "total": "ยอดที่ชำระ",
    "date": "วันที่",
    "reference": "เลขที่อ้างอิง",
    "payment_failed.subject": "การชำระเงินสำหรับ {plan} ไม่สำเร็จ",
    "payment_failed.lead": "เราไม่สามารถตัดเงิน {amount} จากบัตรของคุณสำหรับ {plan} ได้",
    "payment_failed.body": "คุณยังใช้งานได้เต็มรูปแบบจนถึง {grace_end} โปรดอัปเดตบัตรของคุณ แล้วเราจะลองชำระเงินอีกครั้งโดยอัตโนมัติ",
    "payment_failed.retry": "หากไม่อัปเดต เราจะลองตัดเงินจากบัตรของคุณอีกครั้งในวันที่ {retry_date}",
    "payment_failed.button": "อัปเดตบัตรของคุณ",
    "grace_ending.subject": "สิทธิ์การใช้งาน {plan} ของคุณจะสิ้นสุดในวันที่ {grace_end}",
    "grace_ending.lead": "ยอดชำระ {amount} สำหรับ {plan} ยังไม่ได้รับการชำระ",
    "grace_ending.body": "โปรดอัปเดตบัตรของคุณก่อนวันที่ {grace_end} เพื่อใช้งานต่อ",
    "grace_ending.button": "อัปเดตบัตรของคุณ",
    "access_blocked.subject": "สิทธิ์การใช้งาน {plan} ของคุณถูกระงับชั่วคราว",
    "access_blocked.lead": "ยอดชำระ {amount} สำหรับ {plan} ยังไม่ได้รับการชำระ จึงระงับการใช้งานชั่วคราว",
    "access_blocked.body": "อัปเดตบัตรของคุณเพื่อชำระเงิน แล้วคุณจะใช้งานได้อีกครั้งทันที",
    "access_blocked.button": "อัปเดตบัตรของคุณ",
    "receipt.subject": "ใบเสร็จสำหรับการชำระเงิน {amount}",
    "receipt.lead": "ขอบคุณ เราได้รับการชำระเงิน {amount} ของคุณแล้ว",
    "receipt.body": "โปรดเก็บอีเมลนี้ไว้เป็นหลักฐานการชำระเงิน ใบกำกับภาษีดาวน์โหลดได้จากหน้าการชำระเงินของคุณ",
    "subscription_canceled.subject": "การสมัครสมาชิก {plan} ของคุณสิ้นสุดแล้ว",
    "subscription_canceled.lead": "การสมัครสมาชิก {plan} ของคุณสิ้นสุดเมื่อวันที่ {date}",
    "subscription_canceled.body": "คุณสามารถสมัครใหม่ได้ทุกเมื่อจากหน้าการชำระเงินของคุณ",
    "subscription_ending.subject": "การสมัครสมาชิก {plan} ของคุณจะสิ้นสุดในวันที่ {date}",
    "subscription_ending.lead": "การสมัครสมาชิก {plan} ของคุณถูกตั้งให้สิ้นสุดในวันที่ {date}",
    "subscription_ending.body": "คุณยังใช้งานได้จนถึงวันนั้น หากเปลี่ยนใจ สามารถต่ออายุได้จากหน้าการชำระเงินของคุณ",
    "trial_ending.subject": "ช่วงทดลองใช้ {plan} ของคุณจะสิ้นสุดในวันที่ {date}",
    "trial_ending.lead": "ช่วงทดลองใช้ฟรี {plan} ของคุณจะสิ้นสุดในวันที่ {date}",
    "trial_ending.body": "หลังจากนั้นจะเรียกเก็บเงิน {amount} จากบัตรที่บันทึกไว้ "
    "หากต้องการเปลี่ยนบัตรหรือยกเลิก โปรดเปิดหน้าการชำระเงินของคุณ",
    "trial_ending.button": "จัดการการชำระเงิน",
    "trial_ending.body_without_card.cancel": "คุณยังไม่ได้เพิ่มบัตร การสมัครสมาชิกของคุณจึงจะถูกยกเลิกเมื่อสิ้นสุดช่วงทดลองใช้ "
    "หากต้องการใช้ {plan} ต่อในราคา {amount} โปรดเพิ่มบัตรในหน้าการชำระเงินของคุณก่อนวันที่ {date}",
    "trial_ending.body_without_card.pause": "คุณยังไม่ได้เพิ่มบัตร การสมัครสมาชิกของคุณจึงจะถูกพักไว้เมื่อสิ้นสุดช่วงทดลองใช้ "
    "จนกว่าคุณจะเพิ่มบัตร หากต้องการใช้ {plan} ต่อเนื่องในราคา {amount} โปรดเพิ่มบัตรในหน้าการชำระเงินของคุณก่อนวันที่ {date}",
    "trial_ending.body_without_card.create_invoice": "คุณยังไม่ได้เพิ่มบัตร เมื่อสิ้นสุดช่วงทดลองใช้ เราจะส่งใบแจ้งหนี้ {amount} "
    "ให้คุณชำระ โปรดเพิ่มบัตรในหน้าการชำระเงินของคุณก่อนวันที่ {date} เพื่อให้ชำระโดยอัตโนมัติ",
    "trial_ending.button_without_card": "เพิ่มบัตร",
}

CATALOGUES = {"en": EN, "th": TH}


def language_of(locale: str | None) -> str:
    """`th`, `th-TH`, `th_TH` -> th; anything else (or nothing) -> en."""
    code = (locale or "").replace("_", "-").split("-")[0].lower()
    return code if code in CATALOGUES else DEFAULT
