"""Under `payment dev`: an SMTP server on loopback that catches every mail (nothing leaves the machine); the admin's
Outbox page shows each one rendered, and the console logs a line per mail."""

from __future__ import annotations

import logging
import socket
from email import message_from_bytes
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller

log = logging.getLogger("payment.devmail")


class Catcher:
    """Accepts every mail and keeps the last ones in memory (for the console, not for delivery)."""

    def __init__(self, keep: int = 200) -> None:
        self.keep = keep
        self.caught: list[tuple[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=default)
        to, subject = str(message.get("To", "")), str(message.get("Subject", ""))
        self.caught = [*self.caught[-(self.keep - 1) :], (to, subject)]
        log.info("caught mail to %s: %s", to, subject)
        return "250 Message accepted"


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def start_catcher(port: int, host: str = "127.0.0.1") -> tuple[Controller, Catcher]:
    """Start the catching server on a thread of its own (on another free port when `port` is taken); stop it with
    `controller.stop()`; `controller.port` is where it listens."""
    catcher = Catcher()
    try:
        controller = Controller(catcher, hostname=host, port=port)
        controller.start()
    except (OSError, RuntimeError):
        controller = Controller(catcher, hostname=host, port=_free_port(host))
        controller.start()
    return controller, catcher
