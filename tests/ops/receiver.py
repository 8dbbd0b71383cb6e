"""A local HTTP receiver that records every POST: the stand-in for a notification webhook and Sentry's ingest."""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def text(self) -> str:
        """The body as text, decompressed when the sender gzipped or deflated it (Sentry does)."""
        encoding = self.headers.get("content-encoding", "")
        data = self.body
        if encoding == "gzip":
            data = gzip.decompress(data)
        elif encoding == "deflate":
            data = zlib.decompress(data)
        elif encoding == "br":
            import brotli

            data = brotli.decompress(data)
        return data.decode("utf-8", errors="replace")


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, predicate: object = None, *, count: int = 1, timeout: float = 15.0) -> list[Received]:
        """Wait until `count` recorded requests match `predicate` (a callable on Received, or any when None)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                hits = [r for r in self.requests if predicate is None or predicate(r)]  # type: ignore[operator]
            if len(hits) >= count or time.monotonic() > deadline:
                return hits
            time.sleep(0.05)


@contextmanager
def http_receiver(status: int = 200) -> Iterator[Receiver]:
    """Serve on a free 127.0.0.1 port until the block ends; every POST (or GET) is recorded and answered `status`."""
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            with receiver.lock:
                receiver.requests.append(Received(self.path, headers, body))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
