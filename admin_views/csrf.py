"""CSRF protection for everything under /admin (SQLAdmin has none of its own).

The token is a random seed kept in the (signed) admin session, itself signed with SECRET_KEY by itsdangerous, so a
token only works with the session it was issued for and cannot be forged without the key. Every POST/PUT/PATCH/
DELETE must carry it, in the form field `csrf_token` or the header `X-CSRF-Token`; the login form gets one too
(issued with the pre-login session, so a third-party page cannot log a victim into its own account).
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs

import jinja2
from itsdangerous import BadData, URLSafeTimedSerializer
from markupsafe import Markup, escape
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FIELD = "csrf_token"
HEADER = "x-csrf-token"
SESSION_KEY = "csrf_seed"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Admin forms are small; a bigger body is not a form we issued (and must not be buffered whole).
MAX_FORM_BYTES = 1024 * 1024
REJECTED_MESSAGE = (
    "This form has expired or did not come from this admin panel, so nothing was changed. "
    "Go back, reload the page and try again."
)


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt="aquoris-admin-csrf")


def new_seed(conn: HTTPConnection) -> None:
    """Start a fresh token for this session (after sign-in, so a token seen before it is useless)."""
    conn.session[SESSION_KEY] = secrets.token_urlsafe(16)


def token_for(conn: HTTPConnection) -> str:
    """The CSRF token for this request's session, creating the session's seed when it has none."""
    seed = conn.session.get(SESSION_KEY)
    if not isinstance(seed, str):
        new_seed(conn)
        seed = conn.session[SESSION_KEY]
    return str(_serializer(conn.app.state.secret_key).dumps(seed))


def is_valid(conn: HTTPConnection, token: str | None, *, max_age: int) -> bool:
    seed = conn.session.get(SESSION_KEY)
    if not token or not isinstance(seed, str):
        return False
    try:
        signed_seed = _serializer(conn.app.state.secret_key).loads(token, max_age=max_age)
    except BadData:
        return False
    return isinstance(signed_seed, str) and secrets.compare_digest(signed_seed, seed)


def install_template_globals(env: jinja2.Environment) -> None:
    """`{{ csrf_token() }}` and `{{ csrf_input() }}` for every admin template (ours and other engineers')."""

    @jinja2.pass_context
    def csrf_token(context: Any) -> str:
        return token_for(context["request"])

    @jinja2.pass_context
    def csrf_input(context: Any) -> Markup:
        token = token_for(context["request"])
        return Markup(f'<input type="hidden" name="{FIELD}" value="{escape(token)}">')  # noqa: S704

    env.globals["csrf_token"] = csrf_token
    env.globals["csrf_input"] = csrf_input


def rejection_page() -> bytes:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Request refused</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1d273b}}
.box{{border:1px solid #d63939;border-radius:6px;padding:1rem 1.25rem;background:#fbebeb}}</style></head>
<body><div class="box" role="alert"><h1>Security check failed</h1>
<p id="csrf-error">{REJECTED_MESSAGE}</p>
<p>Go back with your browser and reload the page, or open <a href="/admin/">Admin home</a>.</p></div></body></html>
""".encode()


class CsrfMiddleware:
    """Refuses unsafe requests without a valid token with a 403 page that says why (pure ASGI; replays the body)."""

    def __init__(self, app: ASGIApp, *, max_age: int) -> None:
        self.app = app
        self.max_age = max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        token = conn.headers.get(HEADER)
        replay = receive
        if not token:
            body, complete = await _read_body(receive)
            if complete:
                token = await _form_token(scope, body, receive)
            replay = _replayer(body, receive)
        if not is_valid(conn, token, max_age=self.max_age):
            await _reject(send)
            return
        await self.app(scope, replay, send)


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


async def _form_token(scope: Scope, body: bytes, receive: Receive) -> str | None:
    content_type = Headers(scope=scope).get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        values = parse_qs(body.decode("latin-1"), keep_blank_values=True).get(FIELD)
        return values[0] if values else None
    if content_type.startswith("multipart/form-data"):
        request = Request(scope, _replayer(body, receive))
        form = await request.form()
        value = form.get(FIELD)
        await form.close()
        return value if isinstance(value, str) else None
    return None


def _replayer(body: bytes, then: Receive) -> Receive:
    """Hands the buffered body to the app once, then the real channel (so disconnects still arrive)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await then()

    return receive


async def _reject(send: Send) -> None:
    page = rejection_page()
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(page)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": page})
