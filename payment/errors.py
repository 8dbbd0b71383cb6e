"""The one error hierarchy: services raise these, adapters translate them for their audience."""

from __future__ import annotations


class PaymentError(Exception):
    """A failure a user can be told about in plain words."""

    status_code: int = 400
    code: str = "payment_error"

    def __init__(
        self, message: str, status_code: int | None = None, *, code: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code
        self.field = field


class ConfigError(PaymentError):
    code = "config_error"


class ValidationError(PaymentError):
    status_code = 422
    code = "validation_error"


class NotFound(PaymentError):
    status_code = 404
    code = "not_found"


class Conflict(PaymentError):
    status_code = 409
    code = "conflict"


class Unauthorized(PaymentError):
    status_code = 401
    code = "unauthorized"


class Forbidden(PaymentError):
    status_code = 403
    code = "forbidden"


class RateLimited(PaymentError):
    status_code = 429
    code = "rate_limited"


class StripeError(PaymentError):
    """Stripe refused or could not be reached; the message is safe to show."""

    status_code = 502
    code = "stripe_error"
    # seconds Stripe asked us to wait (its Retry-After on a 429), when it said
    retry_after: float | None = None
