"""Reads made straight on the gateway's own connections keep the SDK's behaviour: its headers and query encoding,
its retries (a 500 or a 409 again, a 400 or a 429 not, a dropped connection again), Stripe's error words, and any
way an HTTP/1.1 server may frame its answer (gzip, chunks, a close after it)."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from payment.config import Settings
from payment.errors import StripeError
from payment.stripe.gateway import StripeGateway
from payment.stripe.version import API_VERSION

Answer = Callable[[str], bytes | None]  # the request's head -> the raw answer (None: drop the connection)


def ok(body: dict[str, object], *extra: bytes) -> bytes:
    data = json.dumps(body).encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"".join(h + b"\r\n" for h in extra)
    return head + f"Content-Length: {len(data)}\r\n\r\n".encode() + data


def error(status: int, code: str, *extra: bytes) -> bytes:
    data = json.dumps({"error": {"type": "invalid_request_error", "code": code, "message": f"m {code}"}}).encode()
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n".encode() + b"".join(h + b"\r\n" for h in extra)
    return head + f"Content-Length: {len(data)}\r\n\r\n".encode() + data


class Scripted:
    """A loopback HTTP/1.1 server answering each request with the next of `answers`; records the request heads."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers, self.heads = answers, list[str]()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                self.heads.append(head.decode())
                answer = self.answers.pop(0)(head.decode())
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if b"Connection: close" in answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def gateway_on(
    settings: Settings, answers: list[Answer], retries: int = 2
) -> AsyncIterator[tuple[StripeGateway, Scripted]]:
    stripe = Scripted(answers)
    server = await asyncio.start_server(stripe.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gateway = StripeGateway(settings.replace(stripe_api_base=f"http://127.0.0.1:{port}"), max_network_retries=retries)
    try:
        yield gateway, stripe
    finally:
        await gateway.aclose()
        server.close()
        await server.wait_closed()


async def test_a_read_sends_the_sdks_headers_and_query(settings: Settings) -> None:
    async with gateway_on(settings, [lambda head: ok({"id": "sub_1"})]) as (gateway, stripe):
        found = await gateway.retrieve_subscription("sub_1")
    assert found == {"id": "sub_1"}
    [head] = stripe.heads
    lines = head.split("\r\n")
    assert lines[0] == "GET /v1/subscriptions/sub_1?expand[0]=discounts.source.coupon HTTP/1.1"
    headers = {name.lower(): value for name, _, value in (line.partition(": ") for line in lines[1:] if line)}
    assert headers["stripe-version"] == API_VERSION
    assert headers["authorization"] == f"Bearer {settings.stripe_secret_key}"
    assert headers["user-agent"].startswith("Stripe/v1 PythonBindings/")
    assert json.loads(headers["x-stripe-client-user-agent"])["lang"] == "python"
    assert headers["host"].startswith("127.0.0.1:")


async def test_list_params_are_form_encoded_as_the_sdk_does(settings: Settings) -> None:
    async with gateway_on(settings, [lambda head: ok({"data": []})]) as (gateway, stripe):
        await gateway.list_invoice_payments({"invoice": "in_1 x", "limit": 10, "status": None, "x": True})
    assert stripe.heads[0].startswith("GET /v1/invoice_payments?invoice=in_1+x&limit=10&x=true HTTP/1.1")


async def test_a_500_and_a_409_are_retried_with_the_sdks_backoff(settings: Settings) -> None:
    answers: list[Answer] = [
        lambda head: error(500, "api_error"),
        lambda head: error(409, "lock_timeout"),
        lambda head: ok({"id": "ch_1"}),
    ]
    async with gateway_on(settings, answers) as (gateway, stripe):
        assert (await gateway.retrieve_charge("ch_1"))["id"] == "ch_1"
    assert len(stripe.heads) == 3


async def test_retries_end_after_max_network_retries_with_stripes_words(settings: Settings) -> None:
    answers: list[Answer] = [lambda head: error(503, "api_error")] * 2
    async with gateway_on(settings, answers, retries=1) as (gateway, stripe):
        with pytest.raises(StripeError) as raised:
            await gateway.retrieve_charge("ch_1")
    assert raised.value.code == "stripe_unavailable"
    assert len(stripe.heads) == 2


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (error(404, "resource_missing"), "resource_missing"),
        (error(400, "parameter_unknown"), "parameter_unknown"),
        (error(429, "rate_limit", b"Retry-After: 3"), "stripe_rate_limited"),
    ],
)
async def test_errors_are_not_retried_and_keep_stripes_words(settings: Settings, answer: bytes, code: str) -> None:
    async with gateway_on(settings, [lambda head: answer]) as (gateway, stripe):
        with pytest.raises(StripeError) as raised:
            await gateway.retrieve_price("price_1")
    assert raised.value.code == code
    assert len(stripe.heads) == 1
    if code == "stripe_rate_limited":
        assert raised.value.retry_after == 3.0


async def test_stripe_should_retry_false_is_heeded(settings: Settings) -> None:
    answers: list[Answer] = [lambda head: error(500, "api_error", b"Stripe-Should-Retry: false")]
    async with gateway_on(settings, answers) as (gateway, stripe):
        with pytest.raises(StripeError):
            await gateway.retrieve_price("price_1")
    assert len(stripe.heads) == 1


async def test_a_dropped_connection_is_retried_then_named_unreachable(settings: Settings) -> None:
    answers: list[Answer] = [lambda head: None, lambda head: ok({"id": "cus_1"})]
    async with gateway_on(settings, answers) as (gateway, _):
        assert (await gateway.retrieve_customer("cus_1"))["id"] == "cus_1"
    async with gateway_on(settings, [lambda head: None], retries=0) as (gateway, _):
        with pytest.raises(StripeError) as raised:
            await gateway.retrieve_customer("cus_1")
    assert raised.value.code == "stripe_unreachable"


async def test_gzip_chunked_and_closed_answers_are_read(settings: Settings) -> None:
    body = json.dumps({"id": "in_1", "object": "invoice"}).encode()
    packed = gzip.compress(body)
    chunked = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:5], body[5:])) + b"0\r\n\r\n"
    answers: list[Answer] = [
        lambda head: (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
            + f"Content-Length: {len(packed)}\r\n\r\n".encode()
            + packed
        ),
        lambda head: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked,
        lambda head: ok({"id": "in_1", "object": "invoice"}, b"Connection: close"),
        lambda head: ok({"id": "in_1", "object": "invoice"}),
    ]
    async with gateway_on(settings, answers, retries=0) as (gateway, stripe):
        for _ in range(4):
            assert await gateway.retrieve_invoice("in_1") == {"id": "in_1", "object": "invoice"}
    assert len(stripe.heads) == 4


async def test_a_silent_server_times_out_as_unreachable_and_a_cancelled_read_leaves_no_connection_behind(
    settings: Settings,
) -> None:
    silent = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await silent.wait()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    base = settings.replace(stripe_api_base=f"http://127.0.0.1:{port}")
    gateway = StripeGateway(base, max_network_retries=0, timeout=0.3)
    try:
        with pytest.raises(StripeError) as raised:
            await gateway.retrieve_price("price_1")
        assert raised.value.code == "stripe_unreachable"
        read = asyncio.create_task(gateway.retrieve_price("price_1"))
        await asyncio.sleep(0.05)
        read.cancel()
        with pytest.raises(asyncio.CancelledError):
            await read
        assert gateway._reads is not None and not gateway._reads._pool._idle
    finally:
        silent.set()
        await gateway.aclose()
        server.close()
        await server.wait_closed()


async def test_with_a_proxy_in_the_environment_reads_stay_on_the_sdks_httpx(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # httpx applies NO_PROXY: this read goes straight to the server
    async with gateway_on(settings, [lambda head: ok({"id": "cus_1"})]) as (gateway, stripe):
        assert gateway._reads is None
        assert (await gateway.retrieve_customer("cus_1"))["id"] == "cus_1"
    assert stripe.heads[0].startswith("GET /v1/customers/cus_1 HTTP/1.1")
