"""Who may do what: the four admin roles and the one table of their permissions.

Every service function that changes something an admin can reach starts with `require(actor, Permission.X)`, so
no adapter can forget the check. The actor of an admin action is an `AdminActor`: the audit string ("admin:3")
that also carries the admin's role as read from the database at the start of the request. Actors that are not
admins (the system, Stripe's webhooks, the CLI, a client app) run trusted code paths and are not role-checked; a
bare "admin:3" string without a role is refused, so an adapter that forgets to build an AdminActor fails closed.
"""

from __future__ import annotations

from enum import StrEnum

from payment.errors import Forbidden


class Role(StrEnum):
    OWNER = "owner"
    FINANCE = "finance"
    SUPPORT = "support"
    VIEWER = "viewer"


class Permission(StrEnum):
    REFUND = "refund"
    RECORD_PAYMENT = "record_payment"
    MANAGE_SUBSCRIPTIONS = "manage_subscriptions"  # cancel, resume, extend, grant
    RETRY_WEBHOOK = "retry_webhook"
    MANAGE_PLANS = "manage_plans"
    MANAGE_APPS = "manage_apps"
    REVEAL_API_KEY = "reveal_api_key"  # copy or rotate
    MANAGE_ADMINS = "manage_admins"  # create, change role, deactivate, reset two-factor, passwords
    EXPORT = "export"  # CSV exports of any list
    MANAGE_DOCUMENTS = "manage_documents"  # seller profiles, issuing tax documents now
    MANAGE_WEBHOOK_ENDPOINTS = "manage_webhook_endpoints"  # client apps' endpoints, secrets, replays, test events
    RECONCILE = "reconcile"  # run the drift check, take Stripe's values, ignore a drift
    MANAGE_PROMOTIONS = "manage_promotions"  # coupons and promotion codes: create, deactivate


# The one table. Reading (lists, details, dashboard, audit log) is open to every signed-in admin.
PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.FINANCE: frozenset(
        {
            Permission.REFUND,
            Permission.RECORD_PAYMENT,
            Permission.EXPORT,
            Permission.MANAGE_DOCUMENTS,
            Permission.RECONCILE,
            Permission.MANAGE_PROMOTIONS,
        }
    ),
    Role.SUPPORT: frozenset({Permission.MANAGE_SUBSCRIPTIONS, Permission.RETRY_WEBHOOK}),
    Role.VIEWER: frozenset(),
}

ROLE_LABELS = {Role.OWNER: "Owner", Role.FINANCE: "Finance", Role.SUPPORT: "Support", Role.VIEWER: "Viewer"}
ROLE_HELP = {
    Role.OWNER: "everything, including admins, apps, API keys and plans",
    Role.FINANCE: (
        "refunds, manual payments, exports, tax documents, coupons and promotion codes, and reconciliation with Stripe"
    ),
    Role.SUPPORT: "cancel, resume, extend and grant subscriptions; retry webhook events",
    Role.VIEWER: "read only",
}

WHAT = {
    Permission.REFUND: "issue refunds",
    Permission.RECORD_PAYMENT: "record manual payments",
    Permission.MANAGE_SUBSCRIPTIONS: "change subscriptions",
    Permission.RETRY_WEBHOOK: "retry webhook events",
    Permission.MANAGE_PLANS: "change plans",
    Permission.MANAGE_APPS: "change apps",
    Permission.REVEAL_API_KEY: "copy or rotate API keys",
    Permission.MANAGE_ADMINS: "manage admin users",
    Permission.EXPORT: "export data",
    Permission.MANAGE_DOCUMENTS: "manage seller profiles and tax documents",
    Permission.MANAGE_WEBHOOK_ENDPOINTS: "change client apps' webhook endpoints",
    Permission.RECONCILE: "reconcile our books with Stripe",
    Permission.MANAGE_PROMOTIONS: "manage coupons and promotion codes",
}


class AdminActor(str):
    """The audit actor "admin:<id>" of a signed-in admin, carrying the role it acts with."""

    admin_id: int
    role: Role

    def __new__(cls, admin_id: int, role: str) -> AdminActor:
        actor = super().__new__(cls, f"admin:{admin_id}")
        actor.admin_id = admin_id
        actor.role = Role(role)
        return actor


class PermissionDenied(Forbidden):
    """The actor's role does not allow the action; the adapter shows a 403 page and audits the refusal."""

    def __init__(self, actor: str, permission: Permission) -> None:
        role = actor.role if isinstance(actor, AdminActor) else None
        who = f"The {ROLE_LABELS[role].lower()} role" if role else "This account"
        super().__init__(f"{who} cannot {WHAT[permission]}. Ask an owner if you need this.")
        self.actor = str(actor)
        self.role = role
        self.permission = permission


def allows(role: str, permission: Permission) -> bool:
    """Whether a role holds a permission (unknown roles hold none)."""
    try:
        return permission in PERMISSIONS[Role(role)]
    except ValueError:
        return False


def require(actor: str, permission: Permission) -> None:
    """Refuse (PermissionDenied) an admin actor whose role lacks the permission; other actors are trusted code."""
    if isinstance(actor, AdminActor):
        if permission not in PERMISSIONS[actor.role]:
            raise PermissionDenied(actor, permission)
    elif actor.startswith("admin:"):
        raise PermissionDenied(actor, permission)
