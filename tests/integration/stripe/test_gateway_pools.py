"""The gateway keeps `stripe_http_pool_size` reads in flight on kept-alive connections (its own HTTP/1.1 client,
payment/stripe/http1.py; with a proxy in the environment, the SDK's httpx spread over a few small pools), and
closes them all on `aclose()`."""

from __future__ import annotations

import asyncio
import json

from payment.config import Settings
from payment.stripe.gateway import CONNECTIONS_PER_POOL, StripeGateway


class HeldStripe:
    """A loopback HTTP/1.1 server answering customer reads; while `hold` is set it answers none until `expect`
    requests are in flight at once. Counts the connections opened and those still open."""

    def __init__(self, expect: int) -> None:
        self.expect, self.in_flight, self.opened, self.open = expect, 0, 0, 0
        self.all_in = asyncio.Event()
        self.closed = asyncio.Condition()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        self.open += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                path = head.split(b" ", 2)[1].decode()
                self.in_flight += 1
                if self.in_flight >= self.expect:
                    self.all_in.set()
                await self.all_in.wait()
                self.in_flight -= 1
                body = json.dumps({"id": path.rsplit("/", 1)[-1], "object": "customer"}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            async with self.closed:
                self.open -= 1
                self.closed.notify_all()


async def test_reads_in_flight_share_kept_alive_connections_and_aclose_closes_them(settings: Settings) -> None:
    size = 3 * CONNECTIONS_PER_POOL
    stripe = HeldStripe(expect=size)
    server = await asyncio.start_server(stripe.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gateway = StripeGateway(
        settings.replace(stripe_api_base=f"http://127.0.0.1:{port}", stripe_http_pool_size=size),
        max_network_retries=0,
    )
    try:
        # every read is held until all `size` are in flight at once: fewer connections would never finish
        first = await asyncio.wait_for(
            asyncio.gather(*(gateway.retrieve_customer(f"cus_{i}") for i in range(size))), 30
        )
        assert [c["id"] for c in first] == [f"cus_{i}" for i in range(size)]
        assert stripe.opened == size
        # a second wave reuses the kept-alive connections
        again = await asyncio.wait_for(
            asyncio.gather(*(gateway.retrieve_customer(f"cus_{i}") for i in range(size))), 30
        )
        assert len(again) == size
        assert stripe.opened == size
        await gateway.aclose()
        async with stripe.closed:
            await asyncio.wait_for(stripe.closed.wait_for(lambda: stripe.open == 0), 10)
    finally:
        server.close()
        await server.wait_closed()
