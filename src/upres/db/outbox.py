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
    if row.callback_url is None:
        return
    session.flush()
    session.add(
        OutboxRow(
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
            session.add(
                CallbackAttemptRow(
                    outbox_id=attempt.outbox_id,
                    attempt=attempt.attempt,
                    status_code=attempt.status_code,
                    error=attempt.error,
                    delivered=attempt.delivered,
                    at=attempt.at,
                )
            )
            row.attempts += 1
            if attempt.delivered:
                row.delivered = True
                row.done_at = attempt.at
            elif next_attempt_at is None:
                row.done_at = attempt.at
            else:
                row.next_attempt_at = next_attempt_at

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
