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
from payment.models.documents import BuyerDetails, Document, DocumentCounter, SellerProfile
from payment.models.dunning import DunningCase
from payment.models.ops import (
    AuditChainHead,
    AuditLog,
    BillingSession,
    CheckoutSession,
    FormSubmission,
    RateLimitHit,
    StripeEvent,
)
from payment.models.outbox import OutboxCounter, OutboxMessage, WebhookEndpoint
from payment.models.promotions import Coupon, PromotionCode, TrialGrant

__all__ = [
    "AdminBackupCode",
    "AdminUser",
    "App",
    "AuditChainHead",
    "AuditLog",
    "Base",
    "BillingSession",
    "BuyerDetails",
    "CheckoutSession",
    "Coupon",
    "Customer",
    "DashboardMrrDelta",
    "DashboardRevenueDay",
    "DashboardSubscriptionDay",
    "DashboardSubscriptionTotal",
    "Document",
    "DocumentCounter",
    "DunningCase",
    "FormSubmission",
    "Invoice",
    "OutboxCounter",
    "OutboxMessage",
    "Plan",
    "PromotionCode",
    "RateLimitHit",
    "Refund",
    "SellerProfile",
    "StripeEvent",
    "Subscription",
    "SubscriptionAdjustment",
    "TrialGrant",
    "WebhookEndpoint",
    "utcnow",
]
