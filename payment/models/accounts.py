"""Who uses the service: admins and client apps."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from payment.models.base import Base, Timestamps, in_list

ADMIN_ROLES = ("owner", "finance", "support", "viewer")
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
AFTER_GRACE = ("blocked", "free")
DEFAULT_GRACE_DAYS = 7


class AdminUser(Timestamps, Base):
    __tablename__ = "admin_users"
    __table_args__ = (
        CheckConstraint(f"email ~ '{EMAIL_PATTERN}'", name="email_format"),
        CheckConstraint("char_length(email) <= 320", name="email_length"),
        CheckConstraint("char_length(name) <= 1024", name="name_length"),
        CheckConstraint(in_list("role", ADMIN_ROLES), name="role"),
        Index("uq_admin_users_email_lower", func.lower(text("email")), unique=True),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(1024), default="")
    password_hash: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16), default="viewer", server_default="viewer")
    is_active: Mapped[bool] = mapped_column(default=True, server_default="true")
    last_login_at: Mapped[datetime | None]
    # two-factor (TOTP): the secret encrypted with SECRET_KEY, set at enrolment and in force once confirmed;
    # the last accepted time step, so a code cannot be used twice
    totp_secret_encrypted: Mapped[str | None] = mapped_column(String(512))
    totp_enabled_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None]
    # a one-time set-password link (new admins choose their own password): only the token's SHA-256 is kept
    password_token_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    password_token_expires_at: Mapped[datetime | None]
    # not revoked (some may have expired: payment.admins.sessions decides what is live); for the admin users list
    open_sessions: Mapped[list[AdminSession]] = relationship(
        primaryjoin="and_(AdminSession.admin_id == AdminUser.id, AdminSession.revoked_at.is_(None))",
        order_by="AdminSession.created_at.desc()",
        viewonly=True,
        lazy="raise",
    )

    def __str__(self) -> str:
        return self.email

    @property
    def has_two_factor(self) -> bool:
        return self.totp_enabled_at is not None


class AdminBackupCode(Base):
    """A single-use two-factor backup code; only its SHA-256 is kept."""

    __tablename__ = "admin_backup_codes"
    __table_args__ = (UniqueConstraint("admin_id", "code_hash", name="uq_admin_backup_codes_admin_code"),)

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"))
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    used_at: Mapped[datetime | None]


SECOND_FACTORS = ("none", "totp", "backup")


class AdminSession(Base):
    """One signed-in browser of an admin. The signed session cookie carries a random token; only its SHA-256 is
    kept, so a database leak gives no usable cookie. A session is live until revoked, idle too long or too old."""

    __tablename__ = "admin_sessions"
    __table_args__ = (
        CheckConstraint(in_list("second_factor", SECOND_FACTORS), name="second_factor"),
        CheckConstraint("(revoked_at IS NULL) = (revoked_reason IS NULL)", name="revoked_with_reason"),
        Index("ix_admin_sessions_admin_live", "admin_id", "created_at", postgresql_where=text("revoked_at IS NULL")),
        Index("ix_admin_sessions_last_seen_at", "last_seen_at"),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # moved forward at most once a minute (payment.admins.sessions.TOUCH_EVERY), not written on every request
    last_seen_at: Mapped[datetime] = mapped_column(server_default=func.now())
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(128), default="", server_default="")
    second_factor: Mapped[str] = mapped_column(String(16))
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(32))


class App(Timestamps, Base):
    """A client app. Its API key is stored as a SHA-256 digest (lookup) and encrypted with SECRET_KEY (copy)."""

    __tablename__ = "apps"
    __table_args__ = (
        CheckConstraint(f"slug ~ '{SLUG_PATTERN}'", name="slug_format"),
        CheckConstraint("char_length(slug) <= 128", name="slug_length"),
        CheckConstraint("char_length(name) BETWEEN 1 AND 1024", name="name_length"),
        CheckConstraint("return_url ~* '^https?://[^\\s]+$'", name="return_url_scheme"),
        CheckConstraint("grace_days BETWEEN 0 AND 60", name="grace_days_range"),
        CheckConstraint(in_list("after_grace", AFTER_GRACE), name="after_grace"),
        CheckConstraint("logo_url IS NULL OR logo_url ~* '^https://[^\\s]+$'", name="logo_url_scheme"),
    )

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    slug: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(1024))
    return_url: Mapped[str] = mapped_column(String(2048))
    api_key_hash: Mapped[bytes] = mapped_column(unique=True)
    api_key_encrypted: Mapped[str] = mapped_column(String(512))
    api_key_hint: Mapped[str] = mapped_column(String(32))
    api_key_rotated_at: Mapped[datetime | None]
    is_active: Mapped[bool] = mapped_column(default=True, server_default="true")
    # dunning policy: days of full access after a failed renewal, then `blocked` or back to the `free` plan
    grace_days: Mapped[int] = mapped_column(default=DEFAULT_GRACE_DAYS, server_default=str(DEFAULT_GRACE_DAYS))
    after_grace: Mapped[str] = mapped_column(String(16), default="blocked", server_default="blocked")
    # shown at the top of the billing pages; https only (the pages' CSP allows https images)
    logo_url: Mapped[str | None] = mapped_column(String(2048))
    # which plan changes the billing page offers (upgrades are always offered)
    allow_downgrade: Mapped[bool] = mapped_column(default=True, server_default="true")
    allow_downgrade_from_yearly: Mapped[bool] = mapped_column(default=True, server_default="true")
    allow_interval_change: Mapped[bool] = mapped_column(default=True, server_default="true")

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"
