"""Cross-site request protection for the billing forms.

The token is an HMAC of the billing session id under SECRET_KEY: nothing to store, valid exactly as long as the
session, and useless for any other session. POSTs must carry it, and a browser's Origin, when sent, must be ours.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from urllib.parse import urlsplit

from starlette.requests import Request


def token_for(secret_key: str, billing_session_id: uuid.UUID) -> str:
    message = b"aquoris-billing-csrf:" + billing_session_id.bytes
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request, base_url: str) -> bool:
    """True unless the browser says the form came from another site (no Origin header: rely on the token)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = {_origin(base_url), _origin(str(request.base_url))}
    return origin.lower() in own


def valid(request: Request, submitted: str, *, secret_key: str, base_url: str, billing_session_id: uuid.UUID) -> bool:
    expected = token_for(secret_key, billing_session_id)
    return same_origin(request, base_url) and hmac.compare_digest(expected, submitted)
