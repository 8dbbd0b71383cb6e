"""Admin sign-in against admin_users (bcrypt), kept in a signed session cookie."""

from __future__ import annotations

from sqladmin.authentication import AuthenticationBackend
from starlette.requests import Request

from payment.admins import service as admins
from payment.models import utcnow
from payment.runtime import Services, services_of
from payment.security import verify_password


class AdminAuth(AuthenticationBackend):
    def __init__(self, services: Services) -> None:
        super().__init__(secret_key=services.settings.secret_key)
        self.services = services

    async def login(self, request: Request) -> bool:
        form = await request.form()
        email, password = str(form.get("username", "")), str(form.get("password", ""))
        async with services_of(request).db.transaction() as session:
            admin = await admins.find_by_email(session, email)
            ok = verify_password(password, admin.password_hash if admin else None)
            if not ok or admin is None or not admin.is_active:
                return False
            admin.last_login_at = utcnow()
            request.session.update({"admin_id": admin.id})
        return True

    async def logout(self, request: Request) -> bool:
        request.session.clear()
        return True

    async def authenticate(self, request: Request) -> bool:
        return "admin_id" in request.session
