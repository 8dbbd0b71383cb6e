"""Sentry for web, worker and jobs; off when SENTRY_DSN is unset.

Nothing secret leaves the process: request bodies are never sent, and every event and breadcrumb passes through
`scrub` before it is queued: values under sensitive keys (authorization, cookies, passwords, secrets, tokens, keys,
card fields) are replaced, and so are secrets found inside any string (Bearer credentials, app API keys `apk_...`,
Stripe keys `sk_...`/`rk_...`/`whsec_...`, billing tokens in `/billing/<token>` URLs, card numbers, passwords in
URLs such as DATABASE_URL, `password=...` pairs, also URL-encoded) and the configured secret values themselves.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any
from urllib.parse import unquote, urlsplit

import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration

from payment.config import Settings

FILTERED = "[Filtered]"

# A key is sensitive when its name contains one of these (case-insensitive; '-' and '_' are the same).
_SENSITIVE_KEY_PARTS = (
    "authorization",
    "cookie",
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "privatekey",
    "private_key",
    "credential",
    "signature",
    "csrf",
    "card",
    "cvc",
    "cvv",
    "dsn",
    "database_url",
    "sessionid",
    "x_forwarded_for",
)
# Whole parts of the event that hold no user data and whose names would trip the key check.
_SKIPPED_TOP_LEVEL = frozenset({"modules", "sdk", "debug_meta"})

_KEY_VALUE = re.compile(
    r"(?i)\b([\w-]*(?:password|passwd|secret|token|api[_-]?key|dsn|database_url|authorization|cookie|card|cvc|cvv)"
    r"[\w-]*)"
    r"([\"']?\s*[=:]\s*)"
    r"(\[Filtered\]|'[^']*'?|\"[^\"]*\"?|[^\s&,;)\]}]+)"
)
# The same pairs URL-encoded once or twice (a `next=` or `redirect=` parameter, a logged query string):
# password%3Dhunter22%26next%3D... -> the value runs to the encoded or plain separator
_ENCODED_KEY_VALUE = re.compile(
    r"(?i)\b([\w-]*(?:password|passwd|secret|token|api[_-]?key|dsn|database_url|authorization|cookie|card|cvc|cvv)"
    r"[\w-]*)"
    r"(%(?:25)?3[DdAa])"
    r"(.*?)(?=%(?:25)?26|%(?:25)?3[Bb]|%(?:25)?20|[\s&;,\"')\]}]|$)"
)
_STRING_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(Bearer|Basic)\s+[^\s\"',;]+"), r"\1 " + FILTERED),
    (re.compile(r"\bapk_[A-Za-z0-9_\-]+"), "apk_" + FILTERED),
    (re.compile(r"\b(sk|rk)_(test|live)_[A-Za-z0-9]+"), r"\1_\2_" + FILTERED),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_\-]+"), "whsec_" + FILTERED),
    # user:password@ in any URL (DATABASE_URL, webhook URLs)
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@\"']*:)[^\s@/\"']*@"), r"\1" + FILTERED + "@"),
)
# 13 to 19 digits, optionally grouped by spaces or dashes, passing the Luhn check: a card number (PAN)
# (separators as typed, or URL-encoded in a query string: '+' or %20)
_CARD_NUMBER = re.compile(r"(?<![A-Za-z0-9.])(?:\d(?:[ \-+]|%20)?){12,18}\d(?![A-Za-z0-9.])")
# Identifiers Sentry itself needs intact (hex, could hold a run of digits that looks like a card number).
_SENTRY_IDS = frozenset({"event_id", "trace_id", "span_id", "parent_span_id", "replay_id", "profile_id"})
_BILLING_PATH = re.compile(r"(/billing/)([^\s?#\"'<>]*)")
_TOKEN_SEGMENT = re.compile(r"[A-Za-z0-9_\-]{16,}")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        n = int(char)
        if position % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card_numbers(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0).replace("%20", " "))
    return FILTERED if _luhn_valid(digits) else match.group(0)


def _billing_tokens(match: re.Match[str]) -> str:
    # Billing links carry a bearer token in the path: any long url-safe segment after /billing/ is one.
    return match.group(1) + _TOKEN_SEGMENT.sub(FILTERED, match.group(2))


class Scrubber:
    """Removes secrets from Sentry events and breadcrumbs (serialized, JSON-like structures)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, FILTERED)
        value = _BILLING_PATH.sub(_billing_tokens, value)
        for pattern, replacement in _STRING_PATTERNS:
            value = pattern.sub(replacement, value)
        value = _CARD_NUMBER.sub(_card_numbers, value)
        value = _ENCODED_KEY_VALUE.sub(lambda m: m.group(1) + m.group(2) + FILTERED, value)
        return _KEY_VALUE.sub(lambda m: m.group(1) + m.group(2) + FILTERED, value)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                k: v
                if k in _SENTRY_IDS
                else FILTERED
                if _sensitive_key(k) and v not in (None, "", [], {})
                else self.value(v)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            # headers and cookies also arrive as [name, value] pairs
            if len(value) == 2 and isinstance(value[0], str) and _sensitive_key(value[0]):
                return [value[0], FILTERED]
            return [self.value(v) for v in value]
        return value

    def event(self, event: dict[str, Any], _hint: object = None) -> dict[str, Any]:
        return {k: v if k in _SKIPPED_TOP_LEVEL else self.value(v) for k, v in event.items()}

    def breadcrumb(self, crumb: dict[str, Any], _hint: object = None) -> dict[str, Any]:
        return self.event(crumb)


def _sensitive_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    name = key.lower().replace("-", "_")
    return any(part in name for part in _SENSITIVE_KEY_PARTS) or name.replace("_", "") in ("apikey", "privatekey")


def secret_values(settings: Settings) -> list[str]:
    """The configured secrets, replaced wherever they appear (a repr of the settings, an error message)."""
    values = [
        settings.secret_key,
        settings.stripe_secret_key,
        settings.stripe_webhook_secret,
        *settings.webhook_secrets,
        settings.admin_password or "",
    ]
    if settings.database_url:
        password = urlsplit(settings.database_url).password
        if password:
            values += [password, unquote(password)]
    return values


def release_name(settings: Settings) -> str:
    """SENTRY_RELEASE, else the installed package's version."""
    if settings.sentry_release:
        return settings.sentry_release
    try:
        return f"aquoris-payment@{metadata.version('aquoris-payment')}"
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "aquoris-payment@unknown"


def init_sentry(settings: Settings, *, component: str) -> bool:
    """Start Sentry if configured (component: "web", "worker" or "jobs"); returns whether it is on."""
    if not settings.sentry_dsn:
        return False
    integrations: list[Any] = [LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)]
    if component == "web":
        integrations.append(StarletteIntegration(transaction_style="url"))
    scrubber = Scrubber(secret_values(settings))
    before_send: Callable[[Any, Any], Any] = scrubber.event
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.sentry_environment or settings.app_env,
        release=release_name(settings),
        send_default_pii=False,
        max_request_body_size="never",  # forms carry passwords and card details
        integrations=integrations,
        before_send=before_send,
        before_breadcrumb=scrubber.breadcrumb,
    )
    # On the global scope, so every request's and job's scope inherits it.
    sentry_sdk.get_global_scope().set_tag("component", component)
    return True
