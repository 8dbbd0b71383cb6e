"""A deadline for reading each request: a client that trickles its headers or its body (slowloris) is cut off.

uvicorn's keep-alive timer stops at the first byte of a request, so without this a client sending one byte every
few seconds holds a socket (and a file descriptor) for ever. Each request, headers and body, must arrive within
REQUEST_READ_SECONDS of the connection opening or of the previous response; the app's own time to answer is not
counted.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

# 30 s covers a 1 MB webhook body at ~35 KB/s: generous for any real client, short for a slow attack.
REQUEST_READ_SECONDS = 30.0


class DeadlineProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol (httptools or h11) with a read deadline per request."""

    read_seconds = REQUEST_READ_SECONDS

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        loop: Any = self.loop
        self._deadline = loop.call_later(self.read_seconds, self._expired)

    def _disarm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()  # type: ignore[union-attr]
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        cycle: Any = self.cycle
        reading = cycle is None or cycle.response_complete or cycle.more_body
        if reading and not self.transport.is_closing():
            self.transport.close()  # still waiting for this request's headers or body
