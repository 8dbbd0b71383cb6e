"""English and Thai strings of the promotion code field on the pricing page and of discounted invoices."""

from __future__ import annotations

EN: dict[str, str] = {
    "promo_label": "Promotion code (optional)",
    "promo_help": "Have a code? Type it here, then choose Subscribe on a plan.",
    "promo_selected": "Your choice",
    "promo_unknown": "We do not know the code {code}. Check the spelling and try again.",
    "promo_other_app": "The code {code} cannot be used in {app}.",
    "promo_inactive": "The code {code} is no longer active.",
    "promo_expired": "The code {code} has expired.",
    "promo_exhausted": "The code {code} has been used the maximum number of times.",
    "promo_currency": "The code {code} is for prices in another currency; it cannot be used for {plan}.",
    "promo_first_time": "The code {code} is for first-time customers only.",
    "promo_minimum": "The code {code} needs a higher price than {plan}'s.",
    "promo_rejected": "The payment provider did not accept the code {code} just now. Try again, or subscribe "
    "without it.",
    "invoice_subtotal": "Subtotal",
    "invoice_discount_line": "Discount",
    "invoice_total": "Total",
}

TH: dict[str, str] = {
    "promo_label": "รหัสโปรโมชัน (ไม่บังคับ)",
    "promo_help": "มีรหัสหรือไม่ พิมพ์ที่นี่ แล้วกด “สมัคร” ที่แพ็กเกจที่ต้องการ",
    "promo_selected": "แพ็กเกจที่คุณเลือก",
    "promo_unknown": "ไม่พบรหัส {code} โปรดตรวจสอบการสะกดแล้วลองอีกครั้ง",
    "promo_other_app": "รหัส {code} ใช้กับ {app} ไม่ได้",
    "promo_inactive": "รหัส {code} ไม่สามารถใช้งานได้แล้ว",
    "promo_expired": "รหัส {code} หมดอายุแล้ว",
    "promo_exhausted": "รหัส {code} ถูกใช้ครบจำนวนครั้งแล้ว",
    "promo_currency": "รหัส {code} ใช้กับราคาในสกุลเงินอื่น จึงใช้กับ {plan} ไม่ได้",
    "promo_first_time": "รหัส {code} ใช้ได้เฉพาะลูกค้าใหม่เท่านั้น",
    "promo_minimum": "รหัส {code} ใช้ได้กับแพ็กเกจที่ราคาสูงกว่า {plan}",
    "promo_rejected": "ผู้ให้บริการชำระเงินไม่รับรหัส {code} ในขณะนี้ โปรดลองอีกครั้ง หรือสมัครโดยไม่ใช้รหัส",
    "invoice_subtotal": "ยอดก่อนหักส่วนลด",
    "invoice_discount_line": "ส่วนลด",
    "invoice_total": "ยอดรวม",
}
