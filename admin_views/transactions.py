"""The one way an admin adapter writes: a transaction in which a database failure becomes a plain message.

Every admin page that changes state opens its transaction with `admin_transaction`. A service refuses with a
PaymentError whose message was written to be shown; what the database itself refuses (a constraint a concurrent
save won past the service's own check, a lost connection, a statement timeout) arrives as a SQLAlchemy error, which
would be a 500 with the driver's text in the log. Here it becomes a PaymentError the page shows like any refusal:
the transaction rolled back, nothing was saved, the form can be sent again. Only the error's class and the path are
logged (the driver's text can quote the values of the row).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from payment.db import Database
from payment.errors import Conflict, PaymentError

log = logging.getLogger(__name__)

CONFLICT_MESSAGE = (
    "That value is already in use (someone may have just saved the same thing). "
    "Nothing was saved; check the form and try again."
)
FAILURE_MESSAGE = (
    "The change could not be saved because of a database problem. Nothing was saved; try again in a moment."
)


@asynccontextmanager
async def admin_transaction(db: Database, where: str) -> AsyncIterator[AsyncSession]:
    """A session in one transaction (committed when the block ends); a database failure, at any statement or at
    the commit, is raised as Conflict (a constraint) or PaymentError (anything else) with a message for the page.
    `where` names the page in the log (the request's path)."""
    async with database_errors(where), db.transaction() as session:
        yield session


@asynccontextmanager
async def database_errors(where: str) -> AsyncIterator[None]:
    """The same translation around a service that opens its own short transactions (a Stripe turn)."""
    try:
        yield
    except PaymentError:
        raise
    except IntegrityError as exc:
        log.warning("admin change refused by a database constraint at %s (%s)", where, type(exc.orig).__name__)
        raise Conflict(CONFLICT_MESSAGE) from None
    except SQLAlchemyError as exc:
        log.error("admin change failed in the database at %s (%s)", where, type(exc).__name__)
        raise PaymentError(FAILURE_MESSAGE) from None
