"""SQLAdmin views whose saves go through our service functions (validation and audit in one place).

SQLAdmin's own insert/update open a session, copy form fields onto the model and commit, skipping our rules and the
audit log, and show the raw database error when a constraint fails. Here every save opens one transaction, calls one
service, and a failure reaches the page as a PaymentError's plain message (SQLAdmin shows str(error) in its alert).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from sqladmin.flash import Flash
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from wtforms import Form

from admin_views.access import guard, refuse, role_allows
from admin_views.auth import client_ip, current_admin_actor, current_admin_id
from admin_views.base import IntegerPkView
from admin_views.transactions import admin_transaction
from payment.admins.permissions import Permission, PermissionDenied
from payment.errors import PaymentError
from payment.runtime import services_of

T = TypeVar("T")

FORM_CONTROL = {"class": "form-control"}
FORM_SELECT = {"class": "form-select"}
FORM_CHECK = {"class": "form-check-input"}


@dataclass(frozen=True)
class Actor:
    actor: str
    admin_id: int
    ip: str | None


async def run_service(request: Request, call: Callable[[AsyncSession, Actor], Awaitable[T]]) -> T:
    """One transaction around one service call; database failures become a plain message, never raw text."""
    who = Actor(actor=current_admin_actor(request), admin_id=current_admin_id(request), ip=client_ip(request))
    try:
        async with admin_transaction(services_of(request).db, request.url.path) as session:
            return await call(session, who)
    except PermissionDenied as denied:
        await refuse(request, denied)


def redirect_to_list(request: Request, identity: str) -> Response:
    return RedirectResponse(request.url_for("admin:list", identity=identity), status_code=303)


class ServiceModelView(IntegerPkView):
    """Create and edit through services; no delete (rows are deactivated instead)."""

    can_delete = False
    can_export = False
    can_import = False
    # SQLAdmin passes these to scaffold_form; distinct values tell us which page is asking
    form_create_rules: ClassVar[list[str]] = ["create"]
    form_edit_rules: ClassVar[list[str]] = ["edit"]

    # what creating or editing rows of this view needs; the list hides the buttons from other roles
    write_permission: ClassVar[Permission]

    async def check_can_create(self, request: Request) -> bool:
        return await self._check_write(request, "/create")

    async def check_can_edit(self, request: Request, model: Any) -> bool:
        return await self._check_write(request, "/edit/")

    async def _check_write(self, request: Request, route: str) -> bool:
        if role_allows(request, self.write_permission):
            return True
        if route in request.url.path:  # the create/edit page itself, not a list deciding whether to show a button
            await guard(request, self.write_permission)
        return False

    async def scaffold_form(self, rules: list[str] | None = None) -> type[Form]:
        return await self.form_class(editing=rules == ["edit"])

    async def form_class(self, *, editing: bool) -> type[Form]:
        raise NotImplementedError

    async def create_with(self, session: AsyncSession, data: dict[str, Any], who: Actor) -> Any:
        raise NotImplementedError

    async def update_with(self, session: AsyncSession, pk: int, data: dict[str, Any], who: Actor) -> Any:
        raise NotImplementedError

    async def insert_model(self, request: Request, data: dict[str, Any]) -> Any:
        try:
            obj = await run_service(request, lambda session, who: self.create_with(session, data, who))
        except PaymentError as exc:
            request.state.error_field = exc.field  # the form template marks that input
            raise
        Flash.success(request, f"{self.name} “{saved_label(obj)}” created.")
        return obj

    async def update_model(self, request: Request, pk: str, data: dict[str, Any]) -> Any:
        if not pk.isdigit():
            raise PaymentError("No such record.")
        try:
            obj = await run_service(request, lambda session, who: self.update_with(session, int(pk), data, who))
        except PaymentError as exc:
            request.state.error_field = exc.field
            raise
        Flash.success(request, f"{self.name} “{saved_label(obj)}” saved.")
        return obj


def saved_label(obj: Any) -> str:
    """How a success message names what was saved: its name, else its email, else its id."""
    return str(getattr(obj, "name", None) or getattr(obj, "email", None) or f"#{getattr(obj, 'id', '')}")
