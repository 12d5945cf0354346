"""The callback outbox: rows written with a task's settlement, drained by the dispatcher."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from upres.db import convert
from upres.db.tables import CallbackAttemptRow, OutboxRow, TaskRow
from upres.db.unit import Database
from upres.errors import NotFound
from upres.jobs.store import CallbackAttempt, CallbackBody, Clock, OutboxItem


def enqueue(session: Session, row: TaskRow, *, callback_body: CallbackBody, at: datetime) -> None:
    """Queue the task's callback (when it has a URL), rendered from its settled state."""
    item = pending_callback(row, callback_body=callback_body, at=at)
    if item is None:
        return
    session.flush()
    session.add(item)


def pending_callback(
    row: TaskRow, *, callback_body: CallbackBody, at: datetime
) -> OutboxRow | None:
    """The outbox row for a settled task, due at ``at``; None when it has no callback URL.

    Not yet written (its id comes when it is). Raises whatever ``callback_body`` raises.
    """
    if row.callback_url is None:
        return None
    return OutboxRow(
        task_id=row.id,
        account_id=row.account_id,
        url=row.callback_url,
        body=callback_body(convert.task(row)),
        attempts=0,
        next_attempt_at=at,
        delivered=False,
        done_at=None,
        created_at=at,
    )


def record_attempt(
    item: OutboxRow, attempt: CallbackAttempt, *, next_attempt_at: datetime | None
) -> CallbackAttemptRow:
    """Count ``attempt`` on ``item``: done once delivered or given up (``next_attempt_at``
    None), else due again then. Returns the attempt's log row, not yet written."""
    item.attempts += 1
    if attempt.delivered:
        item.delivered = True
        item.done_at = attempt.at
    elif next_attempt_at is None:
        item.done_at = attempt.at
    else:
        item.next_attempt_at = next_attempt_at
    return CallbackAttemptRow(
        outbox_id=attempt.outbox_id,
        attempt=attempt.attempt,
        status_code=attempt.status_code,
        error=attempt.error,
        delivered=attempt.delivered,
        at=attempt.at,
    )


class SqlCallbacks:
    """Delivery bookkeeping: what is due, and every attempt made."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def due_callbacks(self, *, limit: int) -> list[OutboxItem]:
        query = (
            select(OutboxRow)
            .where(OutboxRow.done_at.is_(None), OutboxRow.next_attempt_at <= self._clock())
            .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
            .limit(limit)
        )
        with self._db.read() as session:
            return [convert.outbox_item(row) for row in session.scalars(query)]

    def record_callback_attempt(
        self, attempt: CallbackAttempt, *, next_attempt_at: datetime | None
    ) -> None:
        """Raises NotFound when the outbox item does not exist."""
        with self._db.write() as session:
            row = session.get(OutboxRow, attempt.outbox_id)
            if row is None:
                raise NotFound(f"No callback {attempt.outbox_id}")
            session.add(record_attempt(row, attempt, next_attempt_at=next_attempt_at))

    def callback_attempts(self, outbox_id: int) -> list[CallbackAttempt]:
        query = (
            select(CallbackAttemptRow)
            .where(CallbackAttemptRow.outbox_id == outbox_id)
            .order_by(CallbackAttemptRow.id)
        )
        with self._db.read() as session:
            return [convert.callback_attempt(row) for row in session.scalars(query)]

    def outbox_for_task(self, task_id: str) -> list[OutboxItem]:
        query = select(OutboxRow).where(OutboxRow.task_id == task_id).order_by(OutboxRow.id)
        with self._db.read() as session:
            return [convert.outbox_item(row) for row in session.scalars(query)]
