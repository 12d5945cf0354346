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
from upres.errors import INSUFFICIENT_QUOTA_MESSAGE, InsufficientQuota, NotFound

# A capture only records what a reservation already took from the balance.
_BALANCE_SIGN = {
    LedgerKind.GRANT: 1,
    LedgerKind.RESERVE: -1,
    LedgerKind.CAPTURE: 0,
    LedgerKind.REFUND: 1,
}


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
    raise InsufficientQuota(INSUFFICIENT_QUOTA_MESSAGE)


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
    _add_to_balance(session, account_id, amount)
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
    session.add(entry(account_id=account_id, kind=kind, amount=amount, at=at, task_id=task_id))


def settle(session: Session, task: TaskRow, *, charged: int, at: datetime) -> None:
    """Capture ``charged`` (capped at the reservation) and refund the rest."""
    for row in settlement(task, charged=charged, at=at):
        if change := balance_change(row):
            _add_to_balance(session, row.account_id, change)
        session.add(row)


def entry(
    *, account_id: str, kind: LedgerKind, amount: int, at: datetime, task_id: str | None = None
) -> LedgerRow:
    """A ledger row, not yet written (its id comes when it is)."""
    return LedgerRow(
        account_id=account_id, task_id=task_id, kind=kind, amount=amount, created_at=at
    )


def balance_change(row: LedgerRow) -> int:
    """How far ``row`` moves its account's balance: the ledger's invariant,
    ``balance == grants - reserves + refunds``, one row at a time."""
    return _BALANCE_SIGN[LedgerKind(row.kind)] * row.amount


def settlement(task: TaskRow, *, charged: int, at: datetime) -> list[LedgerRow]:
    """Settle ``task``: set what it is charged (``charged`` capped at the
    reservation, never negative) and return the capture and refund rows to
    write, leaving out a zero one. ``reserve == capture + refund`` per task."""
    task.credits_charged = max(0, min(charged, task.credits_reserved))
    moves = (
        (LedgerKind.CAPTURE, task.credits_charged),
        (LedgerKind.REFUND, task.credits_reserved - task.credits_charged),
    )
    return [
        entry(account_id=task.account_id, kind=kind, amount=amount, at=at, task_id=task.id)
        for kind, amount in moves
        if amount
    ]


def _add_to_balance(session: Session, account_id: str, amount: int) -> None:
    result = _execute(
        session,
        update(AccountRow)
        .where(AccountRow.id == account_id)
        .values(balance=AccountRow.balance + amount),
    )
    if result.rowcount != 1:
        raise NotFound(f"No account {account_id!r}")


def _execute(session: Session, statement: Update) -> CursorResult[Any]:
    return session.connection().execute(statement)
