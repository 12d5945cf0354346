"""Ledger movements inside a caller's transaction.

Every balance change writes a ledger row in the same transaction, so
``balance == grants - reserves + refunds`` always holds and, for each settled
task, ``reserve == capture + refund``. Amounts are micro-credits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Update, update
from sqlalchemy.orm import Session

from upres.db.tables import AccountRow, LedgerRow, TaskRow
from upres.domain.accounts import LedgerKind
from upres.errors import InsufficientQuota, NotFound


def reserve(session: Session, *, account_id: str, amount: int) -> None:
    """Take ``amount`` from the balance, only if it covers it.

    The conditional UPDATE is the whole concurrency story: two transactions
    cannot both pass ``balance >= amount`` on the same row.
    Raises InsufficientQuota when it does not, NotFound when the account is missing.
    The ledger row is written by ``record`` once the task row exists.
    """
    result = _execute(
        session,
        update(AccountRow)
        .where(AccountRow.id == account_id, AccountRow.balance >= amount)
        .values(balance=AccountRow.balance - amount),
    )
    if result.rowcount == 1:
        return
    if session.get(AccountRow, account_id) is None:
        raise NotFound(f"No account {account_id!r}")
    raise InsufficientQuota("Insufficient quota. Please top up your account.")


def credit(
    session: Session,
    *,
    account_id: str,
    kind: LedgerKind,
    amount: int,
    at: datetime,
    task_id: str | None = None,
) -> None:
    """Add ``amount`` to the balance (a grant or a refund) and record it.

    Raises NotFound when the account is missing.
    """
    result = _execute(
        session,
        update(AccountRow)
        .where(AccountRow.id == account_id)
        .values(balance=AccountRow.balance + amount),
    )
    if result.rowcount != 1:
        raise NotFound(f"No account {account_id!r}")
    record(session, account_id=account_id, kind=kind, amount=amount, at=at, task_id=task_id)


def record(
    session: Session,
    *,
    account_id: str,
    kind: LedgerKind,
    amount: int,
    at: datetime,
    task_id: str | None = None,
) -> None:
    session.add(
        LedgerRow(account_id=account_id, task_id=task_id, kind=kind, amount=amount, created_at=at)
    )


def settle(session: Session, task: TaskRow, *, charged: int, at: datetime) -> None:
    """Capture ``charged`` (capped at the reservation) and refund the rest."""
    charged = max(0, min(charged, task.credits_reserved))
    task.credits_charged = charged
    if charged:
        record(
            session,
            account_id=task.account_id,
            kind=LedgerKind.CAPTURE,
            amount=charged,
            at=at,
            task_id=task.id,
        )
    rest = task.credits_reserved - charged
    if rest:
        credit(
            session,
            account_id=task.account_id,
            kind=LedgerKind.REFUND,
            amount=rest,
            at=at,
            task_id=task.id,
        )


def _execute(session: Session, statement: Update) -> CursorResult[Any]:
    return session.connection().execute(statement)
