"""In production no delivery reaches loopback, private, link-local or metadata addresses, also through a name that
resolves to one; checked when sending, after resolution, and the request goes to the address that was checked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from payment.app_webhooks import addresses, delivery, endpoints
from payment.app_webhooks.sender import post
from payment.config import Settings
from payment.errors import ValidationError
from payment.outbox.delivery import Claimed
from payment.runtime import Services
from tests.integration.app_webhooks.conftest import client_app, messages
from tests.integration.app_webhooks.receiver import webhook_receiver


def _resolver(table: dict[str, list[str]]) -> addresses.Resolver:
    """A DNS stand-in: names of the test's own, the rest as the system resolves them."""

    async def resolve(host: str, port: int) -> list[str]:
        if host in table:
            return table[host]
        return await addresses.system_resolver(host, port)

    return resolve


def _message() -> Claimed:
    return Claimed(
        id=1,
        kind="webhook",
        target="1",
        message_id="msg_test",
        event_type="webhook.test",
        payload={"type": "webhook.test", "data": {}},
        attempts=1,
        created_at=datetime.now(UTC),
    )


@pytest.mark.parametrize(
    "resolved", [["127.0.0.1"], ["169.254.169.254"], ["10.0.0.5"], ["93.184.216.34", "10.0.0.5"], ["fd00:ec2::254"]]
)
async def test_a_name_resolving_to_a_private_or_metadata_address_is_refused(resolved: list[str]) -> None:
    with webhook_receiver() as receiver:
        outcome = await post(
            "https://hooks.vega.example/billing",
            ["whsec_" + "A" * 44],
            _message(),
            allow_private=False,
            timeout=2,
            resolver=_resolver({"hooks.vega.example": resolved}),
        )
        assert not outcome.ok and outcome.status_code is None
        assert outcome.error is not None and "non-public address" in outcome.error
        assert receiver.all() == []


async def test_a_loopback_literal_is_refused_without_private_addresses() -> None:
    with webhook_receiver() as receiver:
        outcome = await post(receiver.url, ["whsec_" + "A" * 44], _message(), allow_private=False, timeout=2)
        assert not outcome.ok and outcome.error is not None and "127.0.0.1" in outcome.error
        assert receiver.all() == []


async def test_the_request_goes_to_the_resolved_address_with_the_name_as_host() -> None:
    with webhook_receiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        outcome = await post(
            f"http://hooks.vega.example:{port}/hooks/billing",
            ["whsec_" + "A" * 44],
            _message(),
            allow_private=True,
            timeout=2,
            resolver=_resolver({"hooks.vega.example": ["127.0.0.1"]}),
        )
        assert outcome.ok, outcome.error
        assert receiver.all()[0].headers["host"] == f"hooks.vega.example:{port}"


async def test_production_deliveries_to_a_name_of_a_metadata_address_fail_and_are_logged(
    services: Services, settings: Settings
) -> None:
    with webhook_receiver() as receiver:
        vega = await client_app(services, receiver.url)
        async with services.db.transaction() as session:
            await endpoints.update(
                session,
                vega.endpoint.id,
                url="https://metadata.vega.example/hook",
                event_types=["customer.updated"],
                description="",
                production=True,
                actor="test",
            )
            await endpoints.send_test(session, vega.endpoint.id, actor="test")
        production = settings.replace(app_env="production")
        resolver = _resolver({"metadata.vega.example": ["169.254.169.254"]})
        await delivery.deliver(services.db, production, resolver=resolver)
        assert receiver.all() == []
    [row] = await messages(services, vega.endpoint.id)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, None)
    assert row.last_error is not None and "169.254.169.254" in row.last_error


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.vega.example/x",
        "https://127.0.0.1/x",
        "https://10.0.0.1/x",
        "https://[::1]/x",
        "https://localhost/x",
        "https://169.254.169.254/latest",
    ],
)
def test_production_refuses_to_save_plain_http_or_a_private_literal(url: str) -> None:
    with pytest.raises(ValidationError):
        endpoints.check_url(url, production=True)
    assert endpoints.check_url(url, production=False) == url
