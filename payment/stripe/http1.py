"""A small HTTP/1.1 client for the gateway's GETs: kept-alive asyncio connections, each request's head built by the
caller once, answers parsed from the bytes as they arrive. It does for a read what httpcore and h11 did (reading
Content-Length, chunked and until-close bodies, 1xx answers skipped, `Connection: close` honoured, TLS with the
caller's context) without their per-request objects, anyio cancel scopes and header validation, which cost a worker
more CPU than the rest of a read.

Errors are the standard library's (OSError and its subclasses such as ConnectionError and TimeoutError, or
`ProtocolError` for an answer that is not HTTP/1.1); the gateway turns any of them into Stripe's network error."""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, bytes]

_MAX_HEAD = 64 * 1024


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 answer."""


class _Connection(asyncio.Protocol):
    """One kept-alive connection: at most one request in flight, its answer read as bytes arrive."""

    def __init__(self, pool: Pool, loop: asyncio.AbstractEventLoop) -> None:
        self.pool, self.loop = pool, loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False
        self.reusable = True
        self.idle_since = 0.0
        self.last_data = 0.0
        self._head: tuple[int, Headers] | None = None
        self._length: int | None = None  # None: chunked or until close (see _chunked)
        self._chunked = False
        self._eof = False
        self._timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is None or self.waiter.done():
            self.close()  # bytes nobody asked for: the connection is not in a state to reuse
            return
        self.last_data = self.loop.time()
        self._parse()

    def eof_received(self) -> bool:
        self._eof = True
        self.reusable = False
        if self.waiter is not None and not self.waiter.done():
            self._parse()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed, self.reusable = True, False
        self.pool.forget(self)
        if self.waiter is not None and not self.waiter.done():
            self._eof = True
            self._parse()
            if not self.waiter.done():
                self.waiter.set_exception(exc or ConnectionResetError("the server closed the connection mid-answer"))

    # a request
    async def request(self, head: bytes, timeout: float) -> Answer:
        loop = self.loop
        waiter: asyncio.Future[Answer] = loop.create_future()
        self.waiter = waiter
        self.buffer.clear()
        self._head, self._length, self._chunked = None, None, False
        self.last_data = loop.time()
        assert self.transport is not None
        self.transport.write(head)
        self._timer = loop.call_at(self.last_data + timeout, self._timed_out, timeout)
        try:
            return await waiter
        finally:
            self._timer.cancel()
            if not waiter.done() or waiter.cancelled() or waiter.exception() is not None:
                self.close()  # cancelled or failed mid-answer: never reused

    def _timed_out(self, timeout: float) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        quiet = self.loop.time() - self.last_data
        if quiet < timeout:  # bytes came since: the read timeout counts from the last of them, as httpcore's does
            self._timer = self.loop.call_at(self.last_data + timeout, self._timed_out, timeout)
            return
        waiter.set_exception(TimeoutError(f"no answer from Stripe in {timeout:g} s"))
        self.close()

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
            self.pool.forget(self)

    # parsing
    def _parse(self) -> None:
        try:
            answer = self._answer()
        except ProtocolError as exc:
            assert self.waiter is not None
            self.waiter.set_exception(exc)
            self.close()
            return
        if answer is not None:
            assert self.waiter is not None
            self.waiter.set_result(answer)

    def _answer(self) -> Answer | None:
        buffer = self.buffer
        while self._head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEAD or self._eof:
                    raise ProtocolError("the answer ended before its head")
                return None
            self._read_head(bytes(buffer[:end]))
            del buffer[: end + 4]
        status, headers = self._head
        if self._chunked:
            body = self._chunks()
            if body is None:
                return None
        elif self._length is not None:
            if len(buffer) < self._length:
                if self._eof:
                    raise ProtocolError("the answer ended before its body")
                return None
            if len(buffer) > self._length:
                raise ProtocolError("more bytes than the answer's Content-Length")
            body = bytes(buffer)
        else:  # no length: the body ends with the connection
            if not self._eof:
                return None
            body = bytes(buffer)
        buffer.clear()
        return status, headers, body

    def _read_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        if version not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise ProtocolError(f"not an HTTP/1.1 answer: {lines[0][:80]!r}")
        try:
            status = int(rest[:3])
        except ValueError:
            raise ProtocolError(f"no status in {lines[0][:80]!r}") from None
        if 100 <= status < 200:  # an interim answer: the real one follows
            return
        headers: Headers = []
        length: int | None = None
        chunked = False
        keep_alive = version == b"HTTP/1.1"
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise ProtocolError(f"a malformed header line: {line[:80]!r}")
            value = value.strip()
            headers.append((name, value))
            lowered = name.lower()
            if lowered == b"content-length":
                try:
                    found = int(value)
                except ValueError:
                    raise ProtocolError(f"a malformed Content-Length: {value[:40]!r}") from None
                if found < 0 or (length is not None and found != length):
                    raise ProtocolError("a bad Content-Length")
                length = found
            elif lowered == b"transfer-encoding":
                chunked = value.lower().endswith(b"chunked")
                if not chunked:
                    raise ProtocolError(f"an unsupported Transfer-Encoding: {value[:40]!r}")
            elif lowered == b"connection":
                tokens = {token.strip().lower() for token in value.split(b",")}
                if b"close" in tokens:
                    keep_alive = False
                elif b"keep-alive" in tokens:
                    keep_alive = True
        if status in (204, 304):
            length, chunked = 0, False
        elif chunked:
            length = None
        elif length is None:
            keep_alive = False  # read until the server closes
        self.reusable = self.reusable and keep_alive
        self._head, self._length, self._chunked = (status, headers), length, chunked

    def _chunks(self) -> bytes | None:
        """The whole body of a chunked answer once all of it is in the buffer (bodies are small: parsed afresh)."""
        buffer, at = self.buffer, 0
        parts: list[bytes] = []
        while True:
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                break
            size_text = bytes(buffer[at:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError(f"a malformed chunk size: {size_text[:20]!r}") from None
            at = line_end + 2
            if size == 0:
                if buffer[at : at + 2] == b"\r\n":
                    end = at + 2
                else:  # trailers, which we do not read
                    trailers_end = buffer.find(b"\r\n\r\n", at)
                    if trailers_end < 0:
                        break
                    end = trailers_end + 4
                if end != len(buffer):
                    raise ProtocolError("bytes after the last chunk")
                return b"".join(parts)
            if len(buffer) < at + size + 2:
                break
            if buffer[at + size : at + size + 2] != b"\r\n":
                raise ProtocolError("a chunk without its CRLF")
            parts.append(bytes(buffer[at : at + size]))
            at += size + 2
        if self._eof:
            raise ProtocolError("the answer ended inside its chunks")
        return None


class Pool:
    """Up to `size` kept-alive connections to one server; a request waits up to `timeout` for one of them (like
    httpcore's pool timeout), reuses the most recently used idle one, and an idle connection older than
    `keepalive` seconds is closed instead of reused."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        size: int,
        timeout: float,
        keepalive: float,
    ) -> None:
        self.host, self.port, self.ssl, self.timeout, self.keepalive = host, port, ssl_context, timeout, keepalive
        self.size = size
        self._slots = asyncio.Semaphore(size)
        self._idle: deque[_Connection] = deque()
        self._open: set[_Connection] = set()
        self.loop: asyncio.AbstractEventLoop | None = None

    def forget(self, connection: _Connection) -> None:
        self._open.discard(connection)

    async def request(self, head: bytes) -> Answer:
        """Send `head` (a whole GET request) and read its answer: status, headers as sent, body (still encoded)."""
        loop = asyncio.get_running_loop()
        if loop is not self.loop:  # first use, or another event loop (a test's): connections never cross loops
            self.loop, self._slots, self._idle, self._open = loop, asyncio.Semaphore(self.size), deque(), set()
        slots = self._slots
        if slots.locked():
            async with asyncio.timeout(self.timeout):
                await slots.acquire()
        else:
            await slots.acquire()
        try:
            connection = self._idle_connection(loop) or await self._connect(loop)
            answer = await connection.request(head, self.timeout)
            if connection.reusable and not connection.closed:
                connection.idle_since = loop.time()
                connection.waiter = None
                self._idle.append(connection)
            else:
                connection.close()
            return answer
        finally:
            slots.release()

    def _idle_connection(self, loop: asyncio.AbstractEventLoop) -> _Connection | None:
        idle, now = self._idle, loop.time()
        while idle and (idle[0].closed or now - idle[0].idle_since > self.keepalive):
            idle.popleft().close()
        while idle:
            connection = idle.pop()
            if connection.reusable and not connection.closed:
                return connection
            connection.close()
        return None

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        server_hostname = self.host if self.ssl is not None else None
        async with asyncio.timeout(self.timeout):
            _, connection = await loop.create_connection(
                lambda: _Connection(self, loop), self.host, self.port, ssl=self.ssl, server_hostname=server_hostname
            )
        self._open.add(connection)
        return connection

    async def aclose(self) -> None:
        """Close every connection (idle or not); the pool stays usable and opens new ones."""
        self._idle.clear()
        for connection in list(self._open):
            connection.close()
        await asyncio.sleep(0)  # let the transports close
