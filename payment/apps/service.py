"""Client apps and their API keys."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from payment.admins.permissions import Permission, require
from payment.audit import service as audit
from payment.errors import Conflict, NotFound, Unauthorized, ValidationError
from payment.models import App, utcnow
from payment.security import api_key_hint, decrypt_secret, digest, encrypt_secret, new_api_key, same_digest

SLUG_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def check_slug(slug: str) -> str:
    slug = slug.strip()
    if not slug:
        raise ValidationError("Slug is required.", field="slug")
    if len(slug) > 128:
        raise ValidationError("Slug must be at most 128 characters.", field="slug")
    if not SLUG_RE.match(slug):
        raise ValidationError("Slug may hold lowercase letters, digits and single hyphens (e.g. vega).", field="slug")
    return slug


def check_return_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
        raise ValidationError("Return URL must be an http:// or https:// address.", field="return_url")
    if len(url) > 2048:
        raise ValidationError("Return URL must be at most 2048 characters.", field="return_url")
    return url


def check_app_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ValidationError("Name is required.", field="name")
    if len(name) > 1024:
        raise ValidationError("Name must be at most 1024 characters.", field="name")
    return name


@dataclass(frozen=True)
class IssuedKey:
    app: App
    api_key: str


def _set_key(app: App, secret_key: str) -> str:
    key = new_api_key()
    app.api_key_hash = digest(key)
    app.api_key_encrypted = encrypt_secret(key, secret_key)
    app.api_key_hint = api_key_hint(key)
    return key


async def get_by_slug(session: AsyncSession, slug: str) -> App | None:
    return (await session.execute(select(App).where(App.slug == slug))).scalar_one_or_none()


def check_logo_url(url: str | None) -> str | None:
    """An optional https:// image address for the billing pages' header (empty: no logo)."""
    url = (url or "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc or any(c.isspace() for c in url):
        raise ValidationError("Logo URL must be an https:// address of an image.", field="logo_url")
    if len(url) > 2048:
        raise ValidationError("Logo URL must be at most 2048 characters.", field="logo_url")
    return url


async def create_app(
    session: AsyncSession,
    *,
    slug: str,
    name: str,
    return_url: str,
    secret_key: str,
    actor: str,
    ip: str | None = None,
    logo_url: str | None = None,
) -> IssuedKey:
    """Register a client app and issue its first API key."""
    require(actor, Permission.MANAGE_APPS)
    slug, name, return_url = check_slug(slug), check_app_name(name), check_return_url(return_url)
    logo = check_logo_url(logo_url)
    if await get_by_slug(session, slug) is not None:
        raise Conflict(f"An app with slug “{slug}” already exists.", field="slug")
    app = App(slug=slug, name=name, return_url=return_url, logo_url=logo)
    key = _set_key(app, secret_key)
    session.add(app)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="app.created",
        entity_type="app",
        entity_id=app.id,
        details={"slug": slug, "name": name, "return_url": return_url},
        ip=ip,
    )
    return IssuedKey(app, key)


async def rotate_key(
    session: AsyncSession, app: App, *, secret_key: str, actor: str, ip: str | None = None
) -> IssuedKey:
    """Issue a new API key; the old one stops working when the transaction commits."""
    require(actor, Permission.REVEAL_API_KEY)
    key = _set_key(app, secret_key)
    app.api_key_rotated_at = utcnow()
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="app.key_rotated",
        entity_type="app",
        entity_id=app.id,
        details={"slug": app.slug, "hint": app.api_key_hint},
        ip=ip,
    )
    return IssuedKey(app, key)


def reveal_key(app: App, secret_key: str) -> str | None:
    """The plaintext key for an admin to copy (None if SECRET_KEY changed since it was issued)."""
    return decrypt_secret(app.api_key_encrypted, secret_key)


async def authenticate_key(session: AsyncSession, api_key: str) -> App:
    """The active app owning this API key, looked up by digest and compared in constant time."""
    wanted = digest(api_key)
    app = (await session.execute(select(App).where(App.api_key_hash == wanted))).scalar_one_or_none()
    if app is None or not same_digest(app.api_key_hash, wanted) or not app.is_active:
        raise Unauthorized("Invalid API key.", code="invalid_api_key")
    return app


async def all_apps(session: AsyncSession) -> list[App]:
    """Every app by slug, as a form offers them."""
    return list(await session.scalars(select(App).order_by(App.slug)))


async def get_app(session: AsyncSession, app_id: int) -> App:
    """The app with this id, or NotFound."""
    app = await session.get(App, app_id)
    if app is None:
        raise NotFound("No such app.")
    return app


async def update_app(
    session: AsyncSession,
    app: App,
    *,
    name: str,
    return_url: str,
    is_active: bool,
    actor: str,
    ip: str | None = None,
    logo_url: str | None = None,
) -> App:
    """Change an app's name, return URL, logo (None: unchanged, "": none) or active flag; the slug stays (client
    apps send it with every call)."""
    wanted: dict[str, object] = {
        "name": check_app_name(name),
        "return_url": check_return_url(return_url),
        "is_active": is_active,
    }
    if logo_url is not None:
        wanted["logo_url"] = check_logo_url(logo_url)
    require(actor, Permission.MANAGE_APPS)
    changes = {k: v for k, v in wanted.items() if getattr(app, k) != v}
    for k, v in changes.items():
        setattr(app, k, v)
    await session.flush()
    if changes:
        await audit.record(
            session, actor=actor, action="app.updated", entity_type="app", entity_id=app.id, details=changes, ip=ip
        )
    return app


async def copy_key(session: AsyncSession, app: App, *, secret_key: str, actor: str, ip: str | None = None) -> str:
    """The plaintext key for an admin to copy; each copy is audited."""
    require(actor, Permission.REVEAL_API_KEY)
    key = reveal_key(app, secret_key)
    if key is None:
        raise Conflict("This key was encrypted with an earlier SECRET_KEY and cannot be shown; rotate it.")
    await audit.record(
        session,
        actor=actor,
        action="app.key_copied",
        entity_type="app",
        entity_id=app.id,
        details={"slug": app.slug, "hint": app.api_key_hint},
        ip=ip,
    )
    return key
