"""GET/POST /admin/set-password/{token}: the page a one-time link opens, before its admin can sign in."""

from __future__ import annotations

from typing import Any

from sqladmin import Admin
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from admin_views.admin_users import PASSWORD_HELP
from admin_views.auth import client_ip
from admin_views.transactions import admin_transaction
from payment.admins import password_links
from payment.errors import NotFound, PaymentError
from payment.runtime import Services, services_of


async def _render(request: Request, context: dict[str, Any], status_code: int = 200) -> Response:
    templates: Any = request.app.state.admin_templates
    response: Response = await templates.TemplateResponse(
        request, "admin/set_password.html", {"help": PASSWORD_HELP, **context}, status_code=status_code
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    return response


async def set_password_page(request: Request) -> Response:
    token = str(request.path_params["token"])
    db = services_of(request).db
    try:
        async with db.session() as session:
            admin = await password_links.admin_for(session, token)
    except NotFound as exc:
        return await _render(request, {"gone": exc.message}, status_code=404)
    context = {"email": admin.email}
    if request.method == "GET":
        return await _render(request, context)
    form = await request.form()
    password, confirm = str(form.get("password", "")), str(form.get("confirm", ""))
    if password != confirm:
        return await _render(request, {**context, "error": "The two passwords differ."}, status_code=400)
    try:
        async with admin_transaction(db, request.url.path) as session:
            await password_links.set_password(session, token, password, ip=client_ip(request))
    except PaymentError as exc:
        return await _render(request, {**context, "error": exc.message}, status_code=400)
    return RedirectResponse(f"{request.url_for('admin:login')}?password=set", status_code=303)


def register(admin: Admin, services: Services) -> None:
    """The set-password page is reached without signing in (the link is the credential)."""
    admin.admin.state.admin_templates = admin.templates
    admin.admin.router.routes.insert(
        0, Route("/set-password/{token}", endpoint=set_password_page, name="set_password", methods=["GET", "POST"])
    )
