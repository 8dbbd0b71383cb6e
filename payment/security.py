"""Passwords, API keys and tokens: hashed or encrypted at rest, compared in constant time."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

import bcrypt
from cryptography.fernet import Fernet, InvalidToken

from payment.errors import ValidationError

BCRYPT_MAX_BYTES = 72
API_KEY_PREFIX = "apk_"


def hash_password(password: str) -> str:
    """bcrypt hash; passwords over 72 bytes are refused rather than silently truncated."""
    encoded = password.encode()
    if len(encoded) > BCRYPT_MAX_BYTES:
        raise ValidationError("Password must be at most 72 bytes (bcrypt's limit).", field="password")
    if len(password) < 8:
        raise ValidationError("Password must be at least 8 characters.", field="password")
    return bcrypt.hashpw(encoded, bcrypt.gensalt()).decode()


@functools.cache
def _dummy_hash() -> str:
    """Made on first use, not at import: one bcrypt round costs every process start a fraction of a second."""
    return bcrypt.hashpw(b"timing-equaliser", bcrypt.gensalt()).decode()


def verify_password(password: str, password_hash: str | None) -> bool:
    """Constant-ish time whether or not the user exists (a dummy hash is checked for unknown users)."""
    encoded = password.encode()
    if len(encoded) > BCRYPT_MAX_BYTES:
        bcrypt.checkpw(b"x", _dummy_hash().encode())
        return False
    try:
        return bcrypt.checkpw(encoded, (password_hash or _dummy_hash()).encode()) and password_hash is not None
    except ValueError:
        return False


def digest(value: str) -> bytes:
    """SHA-256 of a high-entropy secret (API key, session token): safe to store and to look up by."""
    return hashlib.sha256(value.encode()).digest()


def same_digest(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_hint(key: str) -> str:
    """What the admin list shows: the prefix and the last four characters."""
    return f"{key[:8]}…{key[-4:]}"


def new_token() -> str:
    """A URL-safe token with 256 random bits."""
    return secrets.token_urlsafe(32)


def _fernet(secret_key: str) -> Fernet:
    key = hashlib.sha256(b"aquoris-payment:api-keys:" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_secret(value: str, secret_key: str) -> str:
    return _fernet(secret_key).encrypt(value.encode()).decode()


def decrypt_secret(token: str, secret_key: str) -> str | None:
    """None when SECRET_KEY changed since the value was encrypted (rotate the app key then)."""
    try:
        return _fernet(secret_key).decrypt(token.encode()).decode()
    except InvalidToken:
        return None
