"""Our webhook signature check accepts exactly what the stripe SDK's `verify_header` accepts, plus secret rotation."""

from __future__ import annotations

import hashlib
import hmac
import time

import stripe

from payment.config import load_settings
from payment.stripe.gateway import StripeGateway
from payment.stripe.signature import is_signed

SECRET = "whsec_unit_test_secret"
OLD_SECRET = "whsec_unit_test_old_secret"
BODY = b'{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":{"id":"in_1"}}}'


def _v1(body: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _sdk_accepts(body: bytes, header: str, secret: str, tolerance: int = 300) -> bool:
    try:
        stripe.WebhookSignature.verify_header(body.decode("utf-8"), header, secret, tolerance)
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        return False
    except TypeError:  # the SDK's compare_digest on a non-ASCII str: it raises where we refuse
        return False
    return True


def test_the_same_headers_as_the_sdk_are_accepted_and_refused() -> None:
    now = int(time.time())
    good = _v1(BODY, SECRET, now)
    headers = {
        "signed now": f"t={now},v1={good}",
        "signed by Stripe's header helper": stripe.WebhookSignature.generate_signature_header(BODY.decode(), SECRET),
        "4 minutes old": f"t={now - 240},v1={_v1(BODY, SECRET, now - 240)}",
        "6 minutes old": f"t={now - 360},v1={_v1(BODY, SECRET, now - 360)}",
        "signed a minute ahead": f"t={now + 60},v1={_v1(BODY, SECRET, now + 60)}",
        "another secret": f"t={now},v1={_v1(BODY, 'whsec_other', now)}",
        "another timestamp than signed": f"t={now - 1},v1={good}",
        "a second, wrong v1 first": f"t={now},v1={'0' * 64},v1={good}",
        "v0 scheme only": f"t={now},v0={good}",
        "no timestamp": f"v1={good}",
        "not a number": f"t=abc,v1={good}",
        "empty": "",
        "garbage": "t=123,v1=deadbeef",
        "spaces around items": f"t={now}, v1={good}",
        "upper-case hex": f"t={now},v1={good.upper()}",
        "non-ASCII in the signature": f"t={now},v1=é{good[1:]}",
    }
    for case, header in headers.items():
        assert is_signed(BODY, header, [SECRET], tolerance=300) == _sdk_accepts(BODY, header, SECRET), case
    assert is_signed(BODY, headers["signed now"], [SECRET], tolerance=300)
    assert not is_signed(BODY, headers["6 minutes old"], [SECRET], tolerance=300)


def test_any_of_several_secrets_signs_during_a_rotation() -> None:
    now = int(time.time())
    both = f"t={now},v1={_v1(BODY, SECRET, now)},v1={_v1(BODY, OLD_SECRET, now)}"
    old_only = f"t={now},v1={_v1(BODY, OLD_SECRET, now)}"
    assert is_signed(BODY, both, [SECRET], tolerance=300)
    assert is_signed(BODY, old_only, [SECRET, OLD_SECRET], tolerance=300)
    assert not is_signed(BODY, old_only, [SECRET], tolerance=300)
    assert not is_signed(BODY, old_only, [], tolerance=300)


def test_the_exact_bytes_are_signed() -> None:
    now = int(time.time())
    latin = b'{"name":"\xe9"}'  # not UTF-8: checked over the bytes, refused later as not an event
    assert is_signed(latin, f"t={now},v1={_v1(latin, SECRET, now)}", [SECRET], tolerance=300)
    assert not is_signed(BODY + b" ", f"t={now},v1={_v1(BODY, SECRET, now)}", [SECRET], tolerance=300)
    assert is_signed(BODY, f"t={now - 1000},v1={_v1(BODY, SECRET, now - 1000)}", [SECRET], tolerance=300, now=now - 800)


def test_the_gateway_verifies_with_each_configured_secret() -> None:
    gateway = StripeGateway(load_settings({"STRIPE_WEBHOOK_SECRET": f"{SECRET},{OLD_SECRET}"}))
    now = int(time.time())
    for secret in (SECRET, OLD_SECRET):
        assert gateway.verify_webhook(BODY, f"t={now},v1={_v1(BODY, secret, now)}")
    assert not gateway.verify_webhook(BODY, f"t={now},v1={_v1(BODY, 'whsec_other', now)}")
