"""All tables, importable from one place."""

from payment.models.accounts import AdminBackupCode, AdminUser, App
from payment.models.base import Base, utcnow
from payment.models.billing import Customer, Invoice, Refund, Subscription, SubscriptionAdjustment
from payment.models.catalog import Plan
from payment.models.dashboard import (
    DashboardMrrDelta,
    DashboardRevenueDay,
    DashboardSubscriptionDay,
    DashboardSubscriptionTotal,
)
from payment.models.ops import (
    AuditChainHead,
    AuditLog,
    BillingSession,
    CheckoutSession,
    FormSubmission,
    RateLimitHit,
    StripeEvent,
)

__all__ = [
    "AdminBackupCode", "AdminUser", "App", "AuditChainHead", "AuditLog", "Base", "BillingSession", "CheckoutSession",
    "Customer",
    "DashboardMrrDelta", "DashboardRevenueDay", "DashboardSubscriptionDay", "DashboardSubscriptionTotal",
    "FormSubmission", "Invoice", "Plan", "RateLimitHit", "Refund", "StripeEvent", "Subscription",
    "SubscriptionAdjustment", "utcnow",
]
