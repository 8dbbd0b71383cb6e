"""All tables, importable from one place."""

from payment.models.accounts import AdminBackupCode, AdminSession, AdminUser, App
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
    AuditChainLane,
    AuditLog,
    BillingSession,
    CheckoutSession,
    FormSubmission,
    RateLimitHit,
    StripeEvent,
)
from payment.models.outbox import OutboxCounter, OutboxMessage, WebhookEndpoint
from payment.models.promotions import Coupon, PromotionCode, TrialGrant
from payment.models.reconciliation import Drift

__all__ = [
    "AdminBackupCode",
    "AdminSession",
    "AdminUser",
    "App",
    "AuditChainHead",
    "AuditChainLane",
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
    "Drift",
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
