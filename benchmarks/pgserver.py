"""The PostgreSQL server a benchmark runs on: TEST_DATABASE_URL, or an embedded one of its own."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from payment.dburl import libpq_url


@contextmanager
def server(data_dir: str | None = None) -> Iterator[str]:
    """URL of the server's `postgres` database; an embedded server keeps its data in `data_dir` (reusable between
    runs) or in a temporary folder, on tmpfs where there is one."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield libpq_url(configured)
        return
    from payment.embedded_pg import EmbeddedPostgres

    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="aquoris-bench-", dir=shm) as scratch:
        pg = EmbeddedPostgres(data_dir or scratch)
        pg.start()
        try:
            yield pg.url("postgres")
        finally:
            pg.stop()
