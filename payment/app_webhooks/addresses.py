"""Where a delivery may go: never to loopback, private, link-local or metadata addresses in production.

Checked at send time after DNS resolution (a name saved as public may later resolve to 10.0.0.5), and the request
then goes to the very address that was checked, so a second lookup cannot swap it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

from payment.errors import PaymentError

Resolver = Callable[[str, int], Awaitable[list[str]]]

# addresses that are not "private" to Python but must not be reached either
_EXTRA_BLOCKED = [
    ipaddress.ip_network(n)
    for n in (
        "100.64.0.0/10",  # carrier-grade NAT (shared address space)
        "192.0.0.0/24",  # IETF protocol assignments
        "198.18.0.0/15",  # benchmarking
        "fd00:ec2::/32",  # AWS metadata over IPv6 (also inside fc00::/7)
    )
]


class AddressRefused(PaymentError):
    def __init__(self, message: str) -> None:
        super().__init__(message, 422, code="address_refused")


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def is_public(address: str) -> bool:
    """True for a globally routable unicast address (IPv4-mapped IPv6 judged by its IPv4 part)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    ):
        return False
    return not any(ip in net for net in _EXTRA_BLOCKED if net.version == ip.version)


async def resolve_destination(host: str, port: int, *, allow_private: bool, resolver: Resolver) -> str:
    """The address to connect to for host:port; AddressRefused when it is not public (unless private addresses
    are allowed: development and tests) or does not resolve."""
    try:
        addresses = await resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise AddressRefused(f"The host {host} does not resolve ({type(exc).__name__}).") from None
    if not addresses:
        raise AddressRefused(f"The host {host} does not resolve.")
    if not allow_private:
        refused = [a for a in addresses if not is_public(a)]
        if refused:  # one bad answer is enough: a resolver may rotate between them
            raise AddressRefused(
                f"The host {host} resolves to a non-public address ({refused[0]}); "
                "deliveries go to public addresses only."
            )
    return addresses[0]
