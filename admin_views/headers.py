"""Headers of every admin response: a Content-Security-Policy with a per-request script nonce, and no caching
(admin pages carry CSRF tokens, key hints and customer data)."""

from __future__ import annotations

import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NONCE = "csp_nonce"


def policy(nonce: str) -> str:
    # styles: Tabler's markup uses style attributes; scripts: our files and the inline ones carrying the nonce
    return (
        "default-src 'self'; "
        f"script-src 'self' 'nonce-{nonce}'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )


class AdminHeadersMiddleware:
    """Pure ASGI, inside the admin app: templates read the nonce as `request.state.csp_nonce`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope["state"] = {**scope.get("state", {}), NONCE: nonce}
        static = "/statics/" in scope.get("path", "") or "/aquoris-static/" in scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if static or k.lower() not in (b"cache-control", b"content-security-policy")
                ]
                headers.append((b"content-security-policy", policy(nonce).encode()))
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
