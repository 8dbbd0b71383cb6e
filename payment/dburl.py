"""One DATABASE_URL, two drivers: SQLAlchemy+asyncpg for the service, psycopg 3 for Procrastinate."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def _split(url: str) -> tuple[str, str, str, list[tuple[str, str]], str]:
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    if scheme == "postgres":
        scheme = "postgresql"
    if scheme != "postgresql":
        raise ValueError("database URL must start with postgresql://")
    return scheme, parts.netloc, parts.path, parse_qsl(parts.query), parts.fragment


def sqlalchemy_url(url: str) -> str:
    """postgresql+asyncpg://... (asyncpg spells sslmode as ssl)."""
    _, netloc, path, query, fragment = _split(url)
    query = [("ssl", v) if k == "sslmode" else (k, v) for k, v in query]
    return urlunsplit(("postgresql+asyncpg", netloc, path, urlencode(query), fragment))


def libpq_url(url: str) -> str:
    """postgresql://... as libpq, psql, pg_dump and psycopg read it."""
    _, netloc, path, query, fragment = _split(url)
    query = [("sslmode", v) if k == "ssl" else (k, v) for k, v in query]
    return urlunsplit(("postgresql", netloc, path, urlencode(query), fragment))


def with_database(url: str, database: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def redact(url: str) -> str:
    """The URL without its password, fit for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
