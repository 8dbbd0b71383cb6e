"""The gateway names the pinned API version on every call, so Stripe answers in the shapes the reader reads."""

from __future__ import annotations

import contextlib

from payment.config import Settings
from payment.errors import StripeError
from payment.stripe.gateway import StripeGateway
from payment.stripe.version import API_VERSION
from tests.ops.receiver import http_receiver


async def test_every_call_sends_the_pinned_stripe_version(settings: Settings) -> None:
    with http_receiver() as receiver:
        gateway = StripeGateway(settings.replace(stripe_api_base=receiver.url), max_network_retries=0)
        with contextlib.suppress(StripeError):  # the receiver is not Stripe; only the request matters here
            await gateway.create_refund(
                {"charge": "ch_1", "metadata": {"refund_id": "1"}}, idempotency_key="aquoris-refund-1"
            )
        [request] = receiver.wait_for()
    assert request.path == "/v1/refunds"
    assert request.headers["stripe-version"] == API_VERSION
    assert request.headers["idempotency-key"] == "aquoris-refund-1"


async def test_reads_answered_as_sent_send_the_pinned_stripe_version_and_their_expansions(settings: Settings) -> None:
    with http_receiver() as receiver:
        gateway = StripeGateway(settings.replace(stripe_api_base=receiver.url), max_network_retries=0)
        with contextlib.suppress(StripeError):
            await gateway.retrieve_invoice("in_1/x")
        [request] = receiver.wait_for()
    assert request.path.startswith("/v1/invoices/in_1%2Fx?")
    assert "expand" in request.path and "payments" in request.path
    assert request.headers["stripe-version"] == API_VERSION
