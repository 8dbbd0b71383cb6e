"""Which secrets staging and production refuse: known placeholders, development defaults and low entropy.

A SECRET_KEY anyone can read (the `.env.example` placeholder, the in-repo development key, "a" * 32) signs admin
sessions and decrypts the stored API keys, so a deployed service must not start with one.
"""

from __future__ import annotations

import math
import secrets
from collections import Counter

GENERATE_HINT = "generate one with `payment secret`"
WEBHOOK_HINT = "copy the endpoint's signing secret from the Stripe dashboard (Developers > Webhooks)"
PASSWORD_HINT = "choose a long random one, e.g. from `payment secret`"

# Words only a placeholder contains; compared without separators and case.
PLACEHOLDER_WORDS = ("changeme", "placeholder", "insecure", "yoursecret", "replaceme", "example", "xxxxxxxx")

# Shannon estimate of the whole value (bits); a random 32-character hex token is over 80 bits, "a" * 32 is 0.
MIN_KEY_BITS = 72
MIN_PASSWORD_BITS = 48
MIN_PASSWORD_LENGTH = 12


def new_secret() -> str:
    """A fresh SECRET_KEY: 384 random bits, URL-safe."""
    return secrets.token_urlsafe(48)


def _period(value: str) -> str:
    """The shortest unit the value repeats ("abab" -> "ab"), else the value itself."""
    for size in range(1, len(value) // 2 + 1):
        if (value[:size] * (len(value) // size + 1))[: len(value)] == value:
            return value[:size]
    return value


def entropy_bits(value: str) -> float:
    """A generous estimate of the value's entropy: character frequencies times the characters a guesser could not
    predict. Repeats ("abab..."), runs ("0123...", "aaaa") and tiny alphabets score low; random tokens score high."""
    unit = _period(value)
    if not unit:
        return 0.0
    counts = Counter(unit)
    size = len(unit)
    per_char = -sum(n / size * math.log2(n / size) for n in counts.values())
    # a character continuing the step of the two before it (a, b, c / 1, 2, 3 / x, x, x) adds nothing new
    surprising = sum(
        1 for i in range(size) if i < 2 or ord(unit[i]) - ord(unit[i - 1]) != ord(unit[i - 1]) - ord(unit[i - 2])
    )
    return per_char * surprising


def _looks_like_placeholder(value: str) -> bool:
    folded = "".join(ch for ch in value.lower() if ch.isalnum())
    return any(word in folded for word in PLACEHOLDER_WORDS)


def secret_problem(name: str, value: str, known: tuple[str, ...], *, prefix: str = "") -> str | None:
    """Why a key-like secret (SECRET_KEY, STRIPE_WEBHOOK_SECRET) is unsafe to deploy with, or None."""
    hint = WEBHOOK_HINT if prefix == "whsec_" else GENERATE_HINT
    body = value[len(prefix) :] if prefix and value.startswith(prefix) else value
    if value in known or _looks_like_placeholder(body):
        return f"{name} is a published placeholder or development value; {hint}"
    if entropy_bits(body) < MIN_KEY_BITS:
        return f"{name} is too predictable (about {entropy_bits(body):.0f} bits, {MIN_KEY_BITS} needed); {hint}"
    return None


def password_problem(name: str, value: str, known: tuple[str, ...]) -> str | None:
    """Why an admin password is unsafe to seed a deployed service with, or None."""
    if value in known or _looks_like_placeholder(value):
        return f"{name} is a published placeholder or development value; {PASSWORD_HINT}"
    if len(value) < MIN_PASSWORD_LENGTH or entropy_bits(value) < MIN_PASSWORD_BITS:
        return (
            f"{name} is too weak (at least {MIN_PASSWORD_LENGTH} characters and about {MIN_PASSWORD_BITS} bits "
            f"needed); {PASSWORD_HINT}"
        )
    return None
